/**
 * detect_latency_ms, with chain.pollIntervalMs at its default (2000 ms) and
 * the default 3 confirmations, over 20 payments paid one after another:
 *
 * - seen: from anvil's mine call returning (the block with the transfer
 *   exists) to the first status.json poll that no longer says "waiting".
 *   Polls go back to back (2 ms apart) from the bench process. Before each
 *   transfer the bench waits a random part of the poll interval, so blocks
 *   land at every phase of the daemon's poll cycle, as real blocks do.
 * - postback: from the daemon observing the confirming block (its
 *   "payment paid" log line, written in the transaction that marks the
 *   payment paid and queues the postback) to the postback's arrival at a
 *   receiver in the bench process. Both clocks are this machine's Date.now().
 */
import { join } from "node:path";
import { ANVIL_ACCOUNTS } from "../../../src/chain/anvil.ts";
import { openDatabase } from "../../../src/store/index.ts";
import { startPayment, startReceiver, tokens, waitFor } from "../../helpers/index.ts";
import { spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { figure, percentile, progress } from "../report.ts";

export const PAYER = ANVIL_ACCOUNTS[1];
const DEFAULT_POLL_INTERVAL_MS = 2000;
const CONFIRMATIONS = 3; // the default of chain.confirmations
const POSTBACK_TARGET_MS = 250;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Times at which the daemon logged "payment paid", by payment id (ms since the epoch). */
function paidLogTimes(logs: string): Map<string, number> {
  const times = new Map<string, number>();
  for (const line of logs.split("\n")) {
    if (!line.includes('"payment paid"')) continue;
    const entry = JSON.parse(line) as { msg?: string; payment_id?: string; time?: string };
    if (entry.msg === "payment paid" && entry.payment_id && entry.time) {
      times.set(entry.payment_id, Date.parse(entry.time));
    }
  }
  return times;
}

export const detectPhase: Phase = {
  name: "detect",
  figures: [
    { name: "detect_latency_ms_seen_p50", unit: "ms" },
    { name: "detect_latency_ms_seen_max", unit: "ms" },
    { name: "detect_latency_ms_postback_p50", unit: "ms" },
    { name: "detect_latency_ms_postback_max", unit: "ms" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    // NOTE: the smoke run only checks the figures are produced: a short
    // interval keeps it to seconds. The full run keeps the default.
    const pollIntervalMs = smoke ? 250 : DEFAULT_POLL_INTERVAL_MS;
    const count = smoke ? 2 : 20;
    const path = join(workDir, "detect.sqlite");
    const receiver = await startReceiver();
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path, smoke ? { pollIntervalMs } : {}),
    });
    const seen: number[] = [];
    try {
      const payments = [];
      for (let i = 0; i < count; i++) {
        payments.push(
          await startPayment(daemon.privateUrl, { amount: "1", postback_url: receiver.url }),
        );
      }
      // Start from a daemon that has caught up with the chain.
      const head = Number(await chain.client.getBlockNumber());
      const db = openDatabase({ path, readonly: true });
      try {
        await waitFor(
          () =>
            (db.prepare("SELECT block_number FROM chain_cursor").pluck().get() as number) >= head,
          { timeoutMs: 30_000, what: "the daemon to reach the head" },
        );
      } finally {
        db.close();
      }
      progress(`detect: ${count} payments, poll interval ${pollIntervalMs} ms`);
      for (const payment of payments) {
        await sleep(Math.random() * pollIntervalMs);
        await chain.submitTransfer({
          token: chain.token,
          from: PAYER,
          to: payment.address,
          value: tokens(1),
        });
        await chain.mine(1);
        const minedAt = performance.now();
        for (;;) {
          const response = await fetch(`${daemon.publicUrl}/${payment.id}/status.json`);
          const body = (await response.json()) as { status?: string };
          if (!response.ok) throw new Error(`status.json answered ${response.status}`);
          if (body.status !== "waiting") break;
          if (performance.now() - minedAt > pollIntervalMs * 3 + 10_000) {
            throw new Error(
              `payment ${payment.id} not seen ${pollIntervalMs * 3 + 10_000} ms after its block`,
            );
          }
          await sleep(2);
        }
        seen.push(performance.now() - minedAt);
        progress(
          `detect: payment ${seen.length}/${count} seen after ${seen.at(-1)?.toFixed(0)} ms`,
        );
      }
      // The last payments still need their confirming blocks.
      for (let i = 1; i < CONFIRMATIONS; i++) {
        await sleep(Math.random() * pollIntervalMs);
        await chain.mine(1);
      }
      await waitFor(() => receiver.received.length >= count, {
        timeoutMs: pollIntervalMs * 3 + 15_000,
        what: `${count} postbacks`,
      });
    } finally {
      await daemon.stop();
      await receiver.close();
    }
    const paidAt = paidLogTimes(daemon.logs());
    const postback: number[] = [];
    for (const request of receiver.received) {
      const { id } = JSON.parse(request.body) as { id: string };
      const observed = paidAt.get(id);
      if (observed === undefined) throw new Error(`no "payment paid" log line for payment ${id}`);
      postback.push(request.at - observed);
    }
    if (postback.length !== count)
      throw new Error(`${postback.length} postbacks for ${count} payments`);
    progress(
      `detect: postbacks ${postback.map((ms) => ms.toFixed(0)).join(", ")} ms after "payment paid"`,
    );
    const seenTarget = { on: "value", op: "<=", limit: pollIntervalMs + 250 } as const;
    const postbackTarget = { on: "value", op: "<=", limit: POSTBACK_TARGET_MS } as const;
    emit(figure("detect_latency_ms_seen_p50", percentile(seen, 50), "ms", { target: seenTarget }));
    emit(figure("detect_latency_ms_seen_max", percentile(seen, 100), "ms", { target: seenTarget }));
    emit(
      figure("detect_latency_ms_postback_p50", percentile(postback, 50), "ms", {
        target: postbackTarget,
      }),
    );
    emit(
      figure("detect_latency_ms_postback_max", percentile(postback, 100), "ms", {
        target: postbackTarget,
      }),
    );
  },
};
