/**
 * detect_to_browser_ms: with chain.wsUrl set to anvil's websocket (the same
 * port as its HTTP endpoint) and chain.pollIntervalMs at its default, from
 * anvil's mine call returning (the block carrying the payment exists) to the
 * payment's `seen` message arriving on a live status stream that a client
 * in the bench process holds open. 20 payments, paid one after another,
 * each after a random pause, so blocks land at every point of the poll cycle.
 */
import { join } from "node:path";
import { openDatabase } from "../../../src/store/sqlite/index.ts";
import { startPayment, tokens, waitFor } from "../../helpers/index.ts";
import { openEventStream } from "../../helpers/sse.ts";
import { spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { figure, percentile, progress } from "../report.ts";
import { PAYER } from "./detect.ts";

const DEFAULT_POLL_INTERVAL_MS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const detectBrowserPhase: Phase = {
  name: "detect_to_browser",
  figures: [
    { name: "detect_to_browser_ms_p50", unit: "ms" },
    { name: "detect_to_browser_ms_max", unit: "ms" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const count = smoke ? 2 : 20;
    const path = join(workDir, "detect-browser.sqlite");
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path, { wsUrl: `ws://127.0.0.1:${chain.port}` }),
      profile: context.profile("detect-browser-daemon"),
    });
    const latencies: number[] = [];
    try {
      const payments = [];
      for (let i = 0; i < count; i++) {
        payments.push(await startPayment(daemon.privateUrl, { amount: "1" }));
      }
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
      progress(`detect_to_browser: ${count} payments, chain.wsUrl set`);
      for (const payment of payments) {
        const stream = await openEventStream(`${daemon.publicUrl}/${payment.id}/events`);
        try {
          const first = JSON.parse((await stream.nextMessage()).data) as { status: string };
          if (first.status !== "waiting")
            throw new Error(`payment ${payment.id} is ${first.status}`);
          await sleep(Math.random() * (smoke ? 200 : DEFAULT_POLL_INTERVAL_MS));
          await chain.submitTransfer({
            token: chain.token,
            from: PAYER,
            to: payment.address,
            value: tokens(1),
          });
          await chain.mine(1);
          const minedAt = performance.now();
          const message = await stream.nextMessage();
          const arrived = performance.now();
          const status = (JSON.parse(message.data) as { status: string }).status;
          if (status !== "seen") throw new Error(`payment ${payment.id}: ${status}, not seen`);
          latencies.push(arrived - minedAt);
        } finally {
          stream.close();
        }
      }
      progress(
        `detect_to_browser: ${latencies.map((ms) => ms.toFixed(0)).join(", ")} ms from the mine call returning`,
      );
    } finally {
      await daemon.stop();
    }
    emit(
      figure("detect_to_browser_ms_p50", percentile(latencies, 50), "ms", {
        target: { on: "value", op: "<=", limit: 150 },
      }),
    );
    emit(
      figure("detect_to_browser_ms_max", percentile(latencies, 100), "ms", {
        target: { on: "value", op: "<=", limit: 500 },
      }),
    );
  },
};
