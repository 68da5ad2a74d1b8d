/**
 * ABIs the daemon and its tests use. The daemon itself only needs the ERC-20
 * `Transfer` event; the test token (with `mint` and `transferMany`) is for
 * `0xbtcpay dev` and the tests.
 */
import type { Abi, Hex } from "viem";
import testTokenArtifact from "./TestToken.json" with { type: "json" };

/** keccak256("Transfer(address,address,uint256)"): topic0 of every ERC-20 transfer log. */
export const TRANSFER_TOPIC: Hex =
  "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/** 0xBitcoin on Ethereum mainnet (ERC-20, 8 decimals). */
export const MAINNET_0XBTC = "0xb6ed7644c69416d67b522e20bc294a9a9b405b31";

/** The bridged 0xBitcoin on Polygon PoS, chain id 137 (ERC-20, 8 decimals). */
export const POLYGON_0XBTC = "0x71b821aa52a49f32eed535fca6eb5aa130085978";

export const testTokenAbi = [
  {
    type: "function",
    name: "mint",
    stateMutability: "nonpayable",
    inputs: [
      { name: "to", type: "address" },
      { name: "tokens", type: "uint256" },
    ],
    outputs: [],
  },
  {
    type: "function",
    name: "transfer",
    stateMutability: "nonpayable",
    inputs: [
      { name: "to", type: "address" },
      { name: "tokens", type: "uint256" },
    ],
    outputs: [{ name: "", type: "bool" }],
  },
  {
    type: "function",
    name: "transferMany",
    stateMutability: "nonpayable",
    inputs: [
      { name: "to", type: "address[]" },
      { name: "tokens", type: "uint256[]" },
    ],
    outputs: [{ name: "", type: "bool" }],
  },
  {
    type: "function",
    name: "balanceOf",
    stateMutability: "view",
    inputs: [{ name: "", type: "address" }],
    outputs: [{ name: "", type: "uint256" }],
  },
  {
    type: "function",
    name: "decimals",
    stateMutability: "view",
    inputs: [],
    outputs: [{ name: "", type: "uint8" }],
  },
] as const satisfies Abi;

/** Creation bytecode of contracts-abi/TestToken.sol (regenerate with `npm run compile-token`). */
export const testTokenBytecode = testTokenArtifact.bytecode as Hex;
