// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Test 0xBitcoin token for local chains (dev mode and tests only).
/// @notice ERC-20 with 8 decimals and symbol 0xBTC, like mainnet 0xBitcoin,
/// plus an open `mint` and a `transferMany` that emits several Transfer logs
/// in one transaction (as batch payouts from exchanges do). Never deploy it
/// anywhere real: anyone can mint.
contract TestToken {
    string public constant name = "0xBitcoin Token (test)";
    string public constant symbol = "0xBTC";
    uint8 public constant decimals = 8;
    uint256 public totalSupply;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 tokens);
    event Approval(address indexed tokenOwner, address indexed spender, uint256 tokens);

    function mint(address to, uint256 tokens) external {
        totalSupply += tokens;
        balanceOf[to] += tokens;
        emit Transfer(address(0), to, tokens);
    }

    function transfer(address to, uint256 tokens) external returns (bool) {
        _transfer(msg.sender, to, tokens);
        return true;
    }

    function transferMany(address[] calldata to, uint256[] calldata tokens) external returns (bool) {
        require(to.length == tokens.length, "length mismatch");
        for (uint256 i = 0; i < to.length; i++) {
            _transfer(msg.sender, to[i], tokens[i]);
        }
        return true;
    }

    function approve(address spender, uint256 tokens) external returns (bool) {
        allowance[msg.sender][spender] = tokens;
        emit Approval(msg.sender, spender, tokens);
        return true;
    }

    function transferFrom(address from, address to, uint256 tokens) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= tokens, "allowance");
        allowance[from][msg.sender] = allowed - tokens;
        _transfer(from, to, tokens);
        return true;
    }

    function _transfer(address from, address to, uint256 tokens) internal {
        require(balanceOf[from] >= tokens, "balance");
        balanceOf[from] -= tokens;
        balanceOf[to] += tokens;
        emit Transfer(from, to, tokens);
    }
}
