/**
 * backfill_blocks_per_s: catch-up of a daemon whose cursor is 5,000 blocks
 * behind the head, on an anvil chain holding 20,000 token transfers spread
 * over those blocks (40 per transaction, one transaction every 10 blocks):
 * 1 % of them pay 200 of 1,000 pending payments, the others go to 500
 * random addresses. Measured from the
 * child's call to startDaemon to the cursor reaching the head (startup
 * included), once straight against anvil and once through a proxy that
 * refuses eth_getLogs ranges over 1,000 blocks, as hosted providers do.
 * Then every payment is checked: the 200 paid, exactly, and no other.
 *
 * backfill_blocks_per_s_polygon: a second chain (chain id 31338) of the same
 * shape, whose transfers pay 200 other payments, and a daemon watching both
 * networks ("ethereum" and "polygon"), both 5,000 blocks behind, catching up
 * at once; the figure is polygon's rate (ethereum's is in the progress
 * line), its baseline the single network's. Every payment is checked again.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { encodeFunctionData, type Hex } from "viem";
import { testTokenAbi } from "../../../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS } from "../../../src/chain/anvil.ts";
import { openDatabase } from "../../../src/store/sqlite/index.ts";
import { anvilCall, startTestChain, type TestChain, waitFor } from "../../helpers/index.ts";
import { type RpcCall, rpcError, startRpcProxy } from "../../helpers/proxy.ts";
import { spawnDaemon } from "../children.ts";
import {
  type BenchContext,
  daemonConfig,
  daemonNetworksConfig,
  type Phase,
  SECOND_CHAIN_ID,
} from "../context.ts";
import { figure, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";

const SENDER = ANVIL_ACCOUNTS[2];
/** Addresses (not payments) that receive the other 99 % of the transfers. */
const OTHER_RECIPIENTS = 500;
/** The seeded payments' amount, in base units; each paid payment gets exactly this. */
const AMOUNT = 29_000_000n;

type Shape = {
  blocks: number;
  transfers: number;
  perTx: number;
  payments: number;
  /** Largest eth_getLogs range the capped provider accepts. */
  cap: number;
};

const FULL: Shape = { blocks: 5_000, transfers: 20_000, perTx: 40, payments: 1_000, cap: 1_000 };
const SMOKE: Shape = { blocks: 300, transfers: 600, perTx: 20, payments: 50, cap: 100 };

/** Fills blocks start..start+blocks-1 with the transfers; returns the ids of the payments paid. */
async function buildChain(chain: TestChain, shape: Shape, addresses: readonly string[]) {
  const txCount = shape.transfers / shape.perTx;
  const gap = shape.blocks / txCount;
  if (!Number.isInteger(gap) || !Number.isInteger(txCount)) throw new Error("uneven bench shape");
  await chain.mint(chain.token, SENDER, AMOUNT * BigInt(shape.transfers) * 10n);
  const start = Number(await chain.client.getBlockNumber()) + 1;
  const paidAddresses: string[] = [];
  // NOTE: a pool of random recipients rather than a new one per transfer:
  // anvil's mining slows down with every new storage slot (each new holder
  // is one), which would make building the chain take minutes.
  const others = Array.from(
    { length: OTHER_RECIPIENTS },
    () => `0x${randomBytes(20).toString("hex")}`,
  );
  let transfer = 0;
  for (let tx = 0; tx < txCount; tx++) {
    const to: Hex[] = [];
    const values: bigint[] = [];
    for (let i = 0; i < shape.perTx; i++, transfer++) {
      if (transfer % 100 === 50) {
        const address = addresses[paidAddresses.length] as Hex;
        paidAddresses.push(address);
        to.push(address);
        values.push(AMOUNT);
      } else {
        to.push(others[Math.floor(Math.random() * others.length)] as Hex);
        values.push(1n + BigInt(randomBytes(3).readUIntBE(0, 3)));
      }
    }
    await anvilCall(chain.rpcUrl, "eth_sendTransaction", [
      {
        from: SENDER,
        to: chain.token,
        gas: "0x4c4b40", // 5,000,000: 40 transfers to fresh addresses use about 1.2 M
        data: encodeFunctionData({
          abi: testTokenAbi,
          functionName: "transferMany",
          args: [to, values],
        }),
      },
    ]);
    await anvilCall(chain.rpcUrl, "anvil_mine", [`0x${gap.toString(16)}`]);
  }
  const head = Number(await chain.client.getBlockNumber());
  if (head !== start + shape.blocks - 1)
    throw new Error(`expected head ${start + shape.blocks - 1}, got ${head}`);
  const logs = await anvilCall<unknown[]>(chain.rpcUrl, "eth_getLogs", [
    {
      address: chain.token,
      fromBlock: `0x${start.toString(16)}`,
      toBlock: `0x${head.toString(16)}`,
    },
  ]);
  if (logs.length !== shape.transfers)
    throw new Error(`chain holds ${logs.length} transfers, expected ${shape.transfers}`);
  return { start, head, paidAddresses };
}

/** Runs one catch-up; returns blocks per second and how many payments came out wrong. */
async function catchUp({
  context,
  chain,
  rpcUrl,
  templatePath,
  name,
  start,
  head,
  paidAddresses,
}: {
  context: BenchContext;
  chain: TestChain;
  rpcUrl: string;
  templatePath: string;
  name: string;
  start: number;
  head: number;
  paidAddresses: readonly string[];
}): Promise<{ blocksPerS: number; missed: number; wrong: number }> {
  const path = join(context.workDir, `${name}.sqlite`);
  copyFileSync(templatePath, path);
  const daemon = await spawnDaemon({
    config: daemonConfig({ rpcUrl, token: chain.token }, path, { startBlock: start }),
  });
  const db = openDatabase({ path, readonly: true });
  try {
    const cursor = db.prepare("SELECT block_number FROM chain_cursor").pluck();
    const reached = await waitFor(
      () => ((cursor.get() as number | undefined) ?? -1) >= head && Date.now(),
      { timeoutMs: 240_000, intervalMs: 10, what: `${name}: the cursor to reach block ${head}` },
    );
    const seconds = (reached - daemon.startingAt) / 1000;
    const paid = new Map(
      (
        db
          .prepare("SELECT address, paid_amount FROM payments WHERE paid_at IS NOT NULL")
          .all() as Array<{ address: string; paid_amount: string }>
      ).map((row) => [row.address, row.paid_amount]),
    );
    const missed = paidAddresses.filter((a) => paid.get(a) !== AMOUNT.toString()).length;
    const expected = new Set(paidAddresses);
    const wrong = [...paid.keys()].filter((a) => !expected.has(a)).length;
    const transfers = db.prepare("SELECT count(*) FROM transfers").pluck().get() as number;
    progress(
      `backfill ${name}: ${head - start + 1} blocks in ${seconds.toFixed(2)} s; ${paid.size} paid, ${missed} missed, ${wrong} wrongly paid, ${transfers} transfers recorded`,
    );
    return {
      blocksPerS: (head - start + 1) / seconds,
      missed,
      wrong: wrong + Math.abs(transfers - paidAddresses.length),
    };
  } finally {
    db.close();
    await daemon.stop();
  }
}

/**
 * The catch-up of a daemon watching two networks at once: blocks per second
 * of each (to its own head), and how many payments came out wrong.
 */
async function catchUpTwo({
  context,
  templatePath,
  networks,
}: {
  context: BenchContext;
  templatePath: string;
  networks: Array<{
    name: string;
    chainId: number;
    chain: TestChain;
    start: number;
    head: number;
    paidAddresses: readonly string[];
  }>;
}): Promise<{ blocksPerS: Map<string, number>; missed: number; wrong: number }> {
  const path = join(context.workDir, "backfill-two.sqlite");
  copyFileSync(templatePath, path);
  const daemon = await spawnDaemon({
    config: daemonNetworksConfig(
      networks.map(({ name, chainId, chain, start }) => ({
        name,
        chainId,
        chain,
        overrides: { startBlock: start },
      })),
      path,
    ),
  });
  const db = openDatabase({ path, readonly: true });
  try {
    const cursors = db.prepare("SELECT network, block_number FROM chain_cursor");
    const reached = new Map<string, number>();
    await waitFor(
      () => {
        const now = Date.now();
        for (const row of cursors.all() as Array<{ network: string; block_number: number }>) {
          const network = networks.find((n) => n.name === row.network);
          if (network && row.block_number >= network.head && !reached.has(row.network)) {
            reached.set(row.network, now);
          }
        }
        return reached.size === networks.length;
      },
      { timeoutMs: 240_000, intervalMs: 10, what: "both cursors to reach their heads" },
    );
    const blocksPerS = new Map(
      networks.map(({ name, start, head }) => [
        name,
        (head - start + 1) / (((reached.get(name) as number) - daemon.startingAt) / 1000),
      ]),
    );
    const paid = new Map(
      (
        db
          .prepare("SELECT address, paid_amount FROM payments WHERE paid_at IS NOT NULL")
          .all() as Array<{ address: string; paid_amount: string }>
      ).map((row) => [row.address, row.paid_amount]),
    );
    const expected = networks.flatMap((network) => network.paidAddresses);
    const missed = expected.filter((a) => paid.get(a) !== AMOUNT.toString()).length;
    const wanted = new Set(expected);
    const wrong = [...paid.keys()].filter((a) => !wanted.has(a)).length;
    const transfers = db.prepare("SELECT count(*) FROM transfers").pluck().get() as number;
    progress(
      `backfill two networks: ${networks
        .map(
          ({ name, start, head }) =>
            `${name} ${head - start + 1} blocks at ${blocksPerS.get(name)?.toFixed(0)} blocks/s`,
        )
        .join(
          ", ",
        )}; ${paid.size} paid, ${missed} missed, ${wrong} wrongly paid, ${transfers} transfers recorded`,
    );
    return { blocksPerS, missed, wrong: wrong + Math.abs(transfers - expected.length) };
  } finally {
    db.close();
    await daemon.stop();
  }
}

export const backfillPhase: Phase = {
  name: "backfill",
  figures: [
    { name: "backfill_blocks_per_s", unit: "blocks/s" },
    { name: "backfill_blocks_per_s_capped", unit: "blocks/s" },
    { name: "backfill_blocks_per_s_polygon", unit: "blocks/s" },
    { name: "backfill_missed_payments", unit: "payments" },
  ],
  async run(context: BenchContext) {
    const shape = context.smoke ? SMOKE : FULL;
    const [chain, polygon] = await Promise.all([
      startTestChain(),
      startTestChain({ chainId: SECOND_CHAIN_ID }),
    ]);
    try {
      const templatePath = join(context.workDir, "backfill-template.sqlite");
      const addresses = seedPayments({
        path: templatePath,
        counts: { pending: shape.payments },
        amount: AMOUNT,
      }).map((p) => p.address);
      progress(
        `backfill: building ${shape.blocks} blocks with ${shape.transfers} transfers (${shape.transfers / 100} to payments) on each of two chains`,
      );
      // The second chain pays the second half of the payments: no payment is paid twice.
      const [{ start, head, paidAddresses }, second] = await Promise.all([
        buildChain(chain, shape, addresses),
        buildChain(polygon, shape, addresses.slice(shape.payments / 2)),
      ]);
      const common = { context, chain, templatePath, start, head, paidAddresses };
      const direct = await catchUp({ ...common, rpcUrl: chain.rpcUrl, name: "backfill-direct" });

      const proxy = await startRpcProxy(chain.rpcUrl);
      let refused = 0;
      proxy.setHook((call: RpcCall) => {
        if (call.method !== "eth_getLogs") return undefined;
        const filter = call.params[0] as { fromBlock?: string; toBlock?: string };
        if (!filter.fromBlock || !filter.toBlock) return undefined;
        if (Number(filter.toBlock) - Number(filter.fromBlock) + 1 <= shape.cap) return undefined;
        refused++;
        return rpcError(
          call,
          -32602,
          `eth_getLogs is limited to a ${shape.cap.toLocaleString("en-US")} range`,
        );
      });
      let capped: Awaited<ReturnType<typeof catchUp>>;
      try {
        capped = await catchUp({ ...common, rpcUrl: proxy.url, name: "backfill-capped" });
      } finally {
        await proxy.close();
      }
      const getLogs = proxy.calls.filter((c) => c.method === "eth_getLogs").length;
      progress(`backfill capped: ${getLogs} eth_getLogs calls, ${refused} refused as too large`);

      const two = await catchUpTwo({
        context,
        templatePath,
        networks: [
          { name: "ethereum", chainId: 31337, chain, start, head, paidAddresses },
          { name: "polygon", chainId: SECOND_CHAIN_ID, chain: polygon, ...second },
        ],
      });

      const check = (run: { missed: number; wrong: number }) => ({
        on: "check" as const,
        text: "no payment missed",
        passed: run.missed === 0 && run.wrong === 0,
      });
      context.emit(
        figure("backfill_blocks_per_s", direct.blocksPerS, "blocks/s", { target: check(direct) }),
      );
      context.emit(
        figure("backfill_blocks_per_s_capped", capped.blocksPerS, "blocks/s", {
          baseline: direct.blocksPerS,
          target: check(capped),
        }),
      );
      context.emit(
        figure("backfill_blocks_per_s_polygon", two.blocksPerS.get("polygon") ?? 0, "blocks/s", {
          baseline: direct.blocksPerS,
          target: check(two),
        }),
      );
      const missed = direct.missed + capped.missed + two.missed;
      context.emit(
        figure("backfill_missed_payments", missed, "payments", {
          target: {
            on: "check",
            text: "== 0",
            passed: missed === 0 && direct.wrong + capped.wrong + two.wrong === 0,
          },
        }),
      );
    } finally {
      await Promise.all([chain.stop(), polygon.stop()]);
    }
  },
};
