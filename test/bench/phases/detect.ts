/**
 * detect_latency_ms, per network: a daemon watches two networks, the bench's
 * chain as "ethereum" and a second anvil (chain id 31338) as "polygon",
 * each with pollIntervalMs at its default (2000 ms) and the default 3
 * confirmations; 20 payments per network, paid one after another,
 * alternately on each. The figures without a suffix are the first
 * network's, those ending in `_polygon` the second's:
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
import { openDatabase } from "../../../src/store/sqlite/index.ts";
import {
  startPayment,
  startReceiver,
  startTestChain,
  type TestChain,
  tokens,
  waitFor,
} from "../../helpers/index.ts";
import { spawnDaemon } from "../children.ts";
import {
  type BenchContext,
  daemonNetworksConfig,
  type Phase,
  SECOND_CHAIN_ID,
} from "../context.ts";
import { figure, percentile, progress } from "../report.ts";

export const PAYER = ANVIL_ACCOUNTS[1];
/** The networks, in config order; a figure's suffix names the network (none for the first). */
const NETWORKS = ["ethereum", "polygon"] as const;
type NetworkName = (typeof NETWORKS)[number];
const suffixOf = (network: NetworkName) => (network === NETWORKS[0] ? "" : `_${network}`);
const FIGURES = ["seen_p50", "seen_max", "postback_p50", "postback_max"] as const;
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
  figures: NETWORKS.flatMap((network) =>
    FIGURES.map((name) => ({ name: `detect_latency_ms_${name}${suffixOf(network)}`, unit: "ms" })),
  ),
  async run(context: BenchContext) {
    const { smoke, workDir, emit } = context;
    // NOTE: the smoke run only checks the figures are produced: a short
    // interval keeps it to seconds. The full run keeps the default.
    const pollIntervalMs = smoke ? 250 : DEFAULT_POLL_INTERVAL_MS;
    const perNetwork = smoke ? 2 : 20;
    const count = perNetwork * NETWORKS.length;
    const path = join(workDir, "detect.sqlite");
    const second = await startTestChain({ chainId: SECOND_CHAIN_ID });
    const chains: Record<NetworkName, TestChain> = { ethereum: context.chain, polygon: second };
    const receiver = await startReceiver();
    const overrides = smoke ? { pollIntervalMs } : {};
    let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;
    const seen: Record<NetworkName, number[]> = { ethereum: [], polygon: [] };
    /** Each payment's network, by id. */
    const networkOf = new Map<string, NetworkName>();
    try {
      await second.mint(second.token, PAYER, tokens(count));
      daemon = await spawnDaemon({
        config: daemonNetworksConfig(
          [
            { name: "ethereum", chainId: 31337, chain: chains.ethereum, overrides },
            { name: "polygon", chainId: SECOND_CHAIN_ID, chain: chains.polygon, overrides },
          ],
          path,
        ),
      });
      const payments = [];
      for (let i = 0; i < count; i++) {
        const payment = await startPayment(daemon.privateUrl, {
          amount: "1",
          postback_url: receiver.url,
        });
        const network = NETWORKS[i % NETWORKS.length] as NetworkName;
        networkOf.set(payment.id, network);
        payments.push({ ...payment, network });
      }
      // Start from a daemon that has caught up with both chains.
      const heads = Object.fromEntries(
        await Promise.all(
          NETWORKS.map(async (network) => [
            network,
            Number(await chains[network].client.getBlockNumber()),
          ]),
        ),
      ) as Record<NetworkName, number>;
      const db = openDatabase({ path, readonly: true });
      try {
        const cursors = db.prepare("SELECT network, block_number FROM chain_cursor");
        await waitFor(
          () => {
            const rows = cursors.all() as Array<{ network: NetworkName; block_number: number }>;
            return NETWORKS.every((network) =>
              rows.some((row) => row.network === network && row.block_number >= heads[network]),
            );
          },
          { timeoutMs: 30_000, what: "the daemon to reach both heads" },
        );
      } finally {
        db.close();
      }
      progress(
        `detect: ${perNetwork} payments on each of ${NETWORKS.join(" and ")}, poll interval ${pollIntervalMs} ms`,
      );
      for (const payment of payments) {
        const chain = chains[payment.network];
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
        const done = seen[payment.network];
        done.push(performance.now() - minedAt);
        progress(
          `detect: ${payment.network} payment ${done.length}/${perNetwork} seen after ${done.at(-1)?.toFixed(0)} ms`,
        );
      }
      // The last payments still need their confirming blocks, on each chain.
      for (let i = 1; i < CONFIRMATIONS; i++) {
        await sleep(Math.random() * pollIntervalMs);
        await Promise.all(NETWORKS.map((network) => chains[network].mine(1)));
      }
      await waitFor(() => receiver.received.length >= count, {
        timeoutMs: pollIntervalMs * 3 + 15_000,
        what: `${count} postbacks`,
      });
    } finally {
      await daemon?.stop();
      await receiver.close();
      await second.stop();
    }
    const paidAt = paidLogTimes(daemon.logs());
    const postback: Record<NetworkName, number[]> = { ethereum: [], polygon: [] };
    for (const request of receiver.received) {
      const { id } = JSON.parse(request.body) as { id: string };
      const observed = paidAt.get(id);
      const network = networkOf.get(id);
      if (observed === undefined) throw new Error(`no "payment paid" log line for payment ${id}`);
      if (network === undefined) throw new Error(`a postback for an unknown payment ${id}`);
      postback[network].push(request.at - observed);
    }
    const seenTarget = { on: "value", op: "<=", limit: pollIntervalMs + 250 } as const;
    const postbackTarget = { on: "value", op: "<=", limit: POSTBACK_TARGET_MS } as const;
    for (const network of NETWORKS) {
      const times = postback[network];
      if (times.length !== perNetwork)
        throw new Error(`${times.length} postbacks for ${perNetwork} payments on ${network}`);
      progress(
        `detect: ${network} postbacks ${times.map((ms) => ms.toFixed(0)).join(", ")} ms after "payment paid"`,
      );
      const name = (what: (typeof FIGURES)[number]) =>
        `detect_latency_ms_${what}${suffixOf(network)}`;
      const seenOn = seen[network];
      emit(figure(name("seen_p50"), percentile(seenOn, 50), "ms", { target: seenTarget }));
      emit(figure(name("seen_max"), percentile(seenOn, 100), "ms", { target: seenTarget }));
      emit(figure(name("postback_p50"), percentile(times, 50), "ms", { target: postbackTarget }));
      emit(figure(name("postback_max"), percentile(times, 100), "ms", { target: postbackTarget }));
    }
  },
};
