/**
 * The local anvil chain gets its port from anvil itself (port 0), so test
 * files starting chains in parallel never race for one.
 */
import { createServer } from "node:net";
import { afterAll, describe, expect, test } from "vitest";
import { type LocalChain, startLocalChain } from "../../src/chain/anvil.ts";
import { anvilCall } from "../helpers/index.ts";

const chains: LocalChain[] = [];
afterAll(async () => {
  for (const chain of chains) await chain.stop();
});

describe("startLocalChain", () => {
  test("without a port, anvil binds a free one and reports it: three started at once get three ports", async () => {
    const started = await Promise.all([startLocalChain(), startLocalChain(), startLocalChain()]);
    chains.push(...started);
    const ports = started.map((chain) => chain.port);
    expect(new Set(ports).size).toBe(3);
    for (const chain of started) {
      expect(chain.port).toBeGreaterThan(0);
      expect(chain.rpcUrl).toBe(`http://127.0.0.1:${chain.port}`);
      expect(await anvilCall<string>(chain.rpcUrl, "eth_chainId")).toBe("0x7a69");
    }
    // Each is its own chain: mining on one leaves the others where they were.
    await started[0]?.mine(3);
    const heads = await Promise.all(
      started.map((chain) => anvilCall<string>(chain.rpcUrl, "eth_blockNumber")),
    );
    expect(heads).toEqual(["0x3", "0x0", "0x0"]);
  });

  test("a port that is taken: start rejects with anvil's error", async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const { port } = holder.address() as { port: number };
    try {
      await expect(startLocalChain({ port })).rejects.toThrow(/Address already in use/);
    } finally {
      holder.close();
    }
  });
});
