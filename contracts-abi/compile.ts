/**
 * Recompiles contracts-abi/TestToken.sol with the `solc` npm package and writes
 * contracts-abi/TestToken.json ({abi, bytecode}). Run: `npm run compile-token`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import solc from "solc";

const sourcePath = fileURLToPath(new URL("./TestToken.sol", import.meta.url));
const outPath = fileURLToPath(new URL("./TestToken.json", import.meta.url));

const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: readFileSync(sourcePath, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { TestToken: ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e: { severity: string }) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts["TestToken.sol"].TestToken;
const artifact = {
  contractName: "TestToken",
  compiler: `solc ${solc.version()}`,
  abi: contract.abi,
  bytecode: `0x${contract.evm.bytecode.object}`,
};
writeFileSync(outPath, `${JSON.stringify(artifact, null, 2)}\n`);
console.log(`wrote ${outPath} (${artifact.bytecode.length / 2 - 1} bytes of bytecode)`);
