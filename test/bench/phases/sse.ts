/**
 * sse_connections: 10,000 live status streams (`GET /<id>/events`) held
 * open on as many payments, by raw-socket clients in a child process, from
 * 100 loopback source addresses (the public port caps connections per IP).
 *
 * - Memory: the daemon process's resident memory (VmRSS, after a full
 *   garbage collection) with every stream open and idle, minus the same
 *   with the first tenth open (they warm the daemon up), divided by the
 *   streams opened in between.
 * - Fan-out: one block pays 1,000 of those payments (10 multi-send
 *   transactions mined together, so one scan batch changes them all);
 *   from anvil's mine call returning to each affected client's message
 *   (chain.wsUrl set: the block's notification wakes the watcher).
 *   The other clients must get nothing.
 */
import { join } from "node:path";
import { encodeFunctionData, type Hex } from "viem";
import { testTokenAbi } from "../../../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS } from "../../../src/chain/anvil.ts";
import { anvilCall, startTestChain, waitFor } from "../../helpers/index.ts";
import { spawnDaemon, spawnSseClients } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { figure, percentile, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";
import type { OpenResult, StateResult } from "../sse-clients-child.ts";

const SENDER = ANVIL_ACCOUNTS[3];
/** The seeded payments' amount, in base units; each paid one gets exactly this (status seen, 1 confirmation). */
const AMOUNT = 29_000_000n;
const TARGET_KB = 10;
const TARGET_P99_MS = 200;

type Shape = { connections: number; paid: number; perTx: number; sources: number };
const FULL: Shape = { connections: 10_000, paid: 1_000, perTx: 100, sources: 100 };
const SMOKE: Shape = { connections: 200, paid: 20, perTx: 10, sources: 4 };

/** When the daemon logged each "payment seen" line (ms since the epoch), from its log's tail. */
function seenLogTimes(logs: string): number[] {
  const times: number[] = [];
  for (const line of logs.split("\n")) {
    if (!line.includes('"payment seen"')) continue;
    const entry = JSON.parse(line) as { time?: string | number };
    if (entry.time !== undefined) times.push(new Date(entry.time).getTime());
  }
  return times;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const ssePhase: Phase = {
  name: "sse_connections",
  figures: [
    { name: "sse_connections", unit: "connections" },
    { name: "sse_kb_per_connection", unit: "KB" },
    { name: "sse_fanout_ms_p50", unit: "ms" },
    { name: "sse_fanout_ms_p99", unit: "ms" },
    { name: "sse_fanout_ms_max", unit: "ms" },
  ],
  async run(context: BenchContext) {
    const shape = context.smoke ? SMOKE : FULL;
    // Its own chain: the block gas limit goes up so that the 1,000 transfers fit in one block.
    const chain = await startTestChain();
    try {
      await anvilCall(chain.rpcUrl, "evm_setBlockGasLimit", ["0x5f5e100"]); // 100,000,000
      await chain.mint(chain.token, SENDER, AMOUNT * BigInt(shape.paid) * 2n);
      const path = join(context.workDir, "sse.sqlite");
      progress(`sse: seeding ${shape.connections} pending payments`);
      const seeded = seedPayments({
        path,
        counts: { pending: shape.connections },
        amount: AMOUNT,
      });
      const config = daemonConfig(chain, path, { wsUrl: `ws://127.0.0.1:${chain.port}` });
      // Room for every stream: the default caps are meant for a real process's descriptor limit.
      config.public = { ...config.public, maxConnections: 15_000, maxConnectionsPerIp: 1_000_000 };
      const daemon = await spawnDaemon({
        config,
        profile: context.profile("sse-daemon"),
      });
      const clients = await spawnSseClients();
      let minedAt = 0;
      try {
        const sources = Array.from({ length: shape.sources }, (_, i) => `127.0.0.${i + 2}`);
        const ids = seeded.map((payment) => payment.id);
        const open = async (first: number, end: number) => {
          const result = await clients.call<OpenResult>({
            type: "open",
            url: daemon.publicUrl,
            ids: ids.slice(first, end),
            first,
            sources,
            concurrency: 200,
          });
          if (result.failed > 0) {
            throw new Error(`${result.failed} streams failed to open: ${result.firstError}`);
          }
          return result;
        };
        // The first tenth warms the daemon up (code paths, SQLite's page
        // cache, the status cache's table): memory is measured from there.
        const warm = Math.ceil(shape.connections / 10);
        const warmUp = await open(0, warm);
        await sleep(context.smoke ? 200 : 1_000);
        const before = await daemon.memory();
        const rest = await open(warm, shape.connections);
        const opened = warmUp.opened + rest.opened;
        progress(
          `sse: ${opened} streams open in ${((warmUp.ms + rest.ms) / 1000).toFixed(1)} s from ${sources.length} addresses`,
        );
        await sleep(context.smoke ? 200 : 2_000);
        const after = await daemon.memory();
        const perConnection = (bytes: number) => bytes / rest.opened / 1024;
        progress(
          `sse: daemon RSS ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MB, heap ${(before.heapUsed / 2 ** 20).toFixed(0)} → ${(after.heapUsed / 2 ** 20).toFixed(0)} MB from stream ${warm} to ${opened}: ${perConnection(after.rss - before.rss).toFixed(2)} KB RSS, ${perConnection(after.heapUsed - before.heapUsed).toFixed(2)} KB heap per stream`,
        );

        // One block pays `paid` of them; the others must hear nothing.
        const paid = seeded.slice(0, shape.paid);
        for (let i = 0; i < paid.length; i += shape.perTx) {
          const batch = paid.slice(i, i + shape.perTx);
          await anvilCall(chain.rpcUrl, "eth_sendTransaction", [
            {
              from: SENDER,
              to: chain.token,
              gas: "0x4c4b40", // 5,000,000: 100 transfers to fresh addresses use about 3 M
              data: encodeFunctionData({
                abi: testTokenAbi,
                functionName: "transferMany",
                args: [batch.map((p) => p.address as Hex), batch.map(() => AMOUNT)],
              }),
            },
          ]);
        }
        const mineStarted = performance.timeOrigin + performance.now();
        await chain.mine(1);
        minedAt = performance.timeOrigin + performance.now();
        const block = await chain.client.getBlock({ blockTag: "latest" });
        const logs = await anvilCall<unknown[]>(chain.rpcUrl, "eth_getLogs", [
          { address: chain.token, blockHash: block.hash },
        ]);
        if (logs.length !== paid.length) {
          throw new Error(`the block holds ${logs.length} transfers, expected ${paid.length}`);
        }
        progress(
          `sse: block ${block.number} with ${logs.length} transfers mined in ${(minedAt - mineStarted).toFixed(0)} ms`,
        );
        const state = await waitFor(
          async () => {
            const current = await clients.call<StateResult>({ type: "state" });
            return current.messages.slice(0, paid.length).every((count) => count >= 2) && current;
          },
          { timeoutMs: 30_000, intervalMs: 50, what: `${paid.length} clients' messages` },
        );
        const latencies = state.secondAt
          .slice(0, paid.length)
          .map((at) => (at as number) - minedAt);
        // Let anything else the block caused arrive before counting the others' messages.
        await sleep(context.smoke ? 200 : 1_000);
        const final = await clients.call<StateResult>({ type: "state" });
        const extra = final.messages.slice(paid.length).filter((count) => count !== 1).length;
        const repeated = final.messages.slice(0, paid.length).filter((count) => count !== 2).length;
        progress(
          `sse: ${paid.length} messages from ${percentile(latencies, 0).toFixed(0)} to ${percentile(latencies, 100).toFixed(0)} ms after the mine call returned; ${final.open} streams open; ${extra} unaffected streams got a message, ${repeated} affected ones more than one`,
        );
        if (extra > 0 || repeated > 0) {
          throw new Error(
            `${extra} unaffected streams got a message, ${repeated} affected ones more than one`,
          );
        }
        context.emit(
          figure("sse_connections", opened, "connections", {
            target: {
              on: "check",
              text: `${shape.connections} open at once`,
              passed: opened === shape.connections && final.open === shape.connections,
            },
          }),
        );
        context.emit(
          figure("sse_kb_per_connection", perConnection(after.rss - before.rss), "KB", {
            target: { on: "value", op: "<=", limit: TARGET_KB },
          }),
        );
        context.emit(figure("sse_fanout_ms_p50", percentile(latencies, 50), "ms"));
        context.emit(
          figure("sse_fanout_ms_p99", percentile(latencies, 99), "ms", {
            target: { on: "value", op: "<=", limit: TARGET_P99_MS },
          }),
        );
        context.emit(figure("sse_fanout_ms_max", percentile(latencies, 100), "ms"));
      } finally {
        await clients.call({ type: "close" }).catch(() => undefined);
        await clients.stop();
        await daemon.stop();
      }
      // The log is complete once the daemon has stopped.
      const seen = seenLogTimes(daemon.logs());
      progress(
        `sse: the daemon logged its ${seen.length} "payment seen" lines from ${(percentile(seen, 0) - minedAt).toFixed(0)} to ${(percentile(seen, 100) - minedAt).toFixed(0)} ms after the mine call returned`,
      );
    } finally {
      await chain.stop();
    }
  },
};
