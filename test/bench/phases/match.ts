/**
 * match_logs_per_s: the watcher's log matching step (`payments.sink.filter`,
 * the daemon's real code and database) on synthetic Transfer logs, no RPC.
 * 1 % of the logs pay one of the pending payments; the rest go to random
 * addresses, as on mainnet where almost every 0xBTC transfer is someone else's.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createFastAddressDeriver } from "../../../src/addresses/index.ts";
import { DEV_XPUB } from "../../../src/chain/anvil.ts";
import type { TokenTransfer } from "../../../src/chain/types.ts";
import { createClock } from "../../../src/internal/clock.ts";
import { createPayments } from "../../../src/payments/index.ts";
import { openDatabase } from "../../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../../src/store/sqlite/storage.ts";
import { silentLogger } from "../../helpers/index.ts";
import type { Phase } from "../context.ts";
import { figure, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";

/** Logs per eth_getLogs answer: a 2,000-block range of a busy token. */
const CHUNK = 10_000;

function syntheticChunk(
  pending: readonly string[],
  firstBlock: number,
): {
  logs: TokenTransfer[];
  hits: number;
} {
  const random = randomBytes(CHUNK * 20 + (CHUNK / 4) * 32 + 32);
  const logs: TokenTransfer[] = [];
  let hits = 0;
  let txHash = "";
  let blockHash = "";
  for (let i = 0; i < CHUNK; i++) {
    const blockNumber = firstBlock + Math.floor(i / 5);
    if (i % 5 === 0) blockHash = `0x${random.toString("hex", 0, 32)}`;
    if (i % 4 === 0)
      txHash = `0x${random.toString("hex", CHUNK * 20 + (i / 4) * 32, CHUNK * 20 + (i / 4) * 32 + 32)}`;
    let to: string;
    if (i % 100 === 37) {
      to = pending[Math.floor(Math.random() * pending.length)] as string;
      hits++;
    } else {
      to = `0x${random.toString("hex", i * 20, i * 20 + 20)}`;
    }
    logs.push({
      txHash,
      logIndex: i % 4,
      blockNumber,
      blockHash,
      from: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
      to,
      value: 29_000_000n,
    });
  }
  return { logs, hits };
}

export const matchPhase: Phase = {
  name: "match",
  figures: [{ name: "match_logs_per_s", unit: "logs/s" }],
  async run({ smoke, workDir, emit }) {
    const pendingCount = smoke ? 2_000 : 100_000;
    const totalLogs = smoke ? 20_000 : 1_000_000;
    const path = join(workDir, "match.sqlite");
    progress(`match: seeding ${pendingCount} pending payments`);
    const seeded = seedPayments({ path, counts: { pending: pendingCount } });
    const pending = seeded.map((p) => p.address);
    const db = openDatabase({ path });
    try {
      const payments = await createPayments({
        storage: createSqliteStorage(db),
        deriver: createFastAddressDeriver({ xpub: DEV_XPUB }),
        clock: createClock(),
        logger: silentLogger,
        chainId: 31337,
        token: "0x0000000000000000000000000000000000000001",
        decimals: 8,
        requiredConfirmations: 3,
        expiresAfterSeconds: 86_400,
      });
      // Warm-up: one chunk, not counted.
      await payments.sink.filter(syntheticChunk(pending, 1).logs);
      progress(`match: ${totalLogs} logs against ${pendingCount} pending addresses`);
      let filterMs = 0;
      let matched = 0;
      let expected = 0;
      for (let done = 0; done < totalLogs; done += CHUNK) {
        const { logs, hits } = syntheticChunk(pending, 10 + done / 5);
        const began = performance.now();
        matched += (await payments.sink.filter(logs)).length;
        filterMs += performance.now() - began;
        expected += hits;
      }
      if (matched !== expected) {
        throw new Error(`sink.filter matched ${matched} logs, expected ${expected}`);
      }
      const perSecond = (totalLogs / filterMs) * 1000;
      progress(`match: ${matched} matched, ${filterMs.toFixed(0)} ms in sink.filter`);
      emit(
        figure("match_logs_per_s", perSecond, "logs/s", {
          target: { on: "value", op: ">=", limit: 100_000 },
        }),
      );
    } finally {
      db.close();
    }
  },
};
