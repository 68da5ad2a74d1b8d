/**
 * Several daemons on one PostgreSQL (issue: replicas): each is a real
 * `0xbtcpay serve` process on the same config, against a throwaway cluster
 * and a real anvil chain. Any replica may die (kill -9) or lose the
 * database; no payment is missed, doubled or left unannounced.
 */
import pg from "pg";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { testTokenAbi } from "../../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import { type DaemonChild, spawnDaemon, writeDaemonConfig } from "../helpers/cli.ts";
import {
  rpc,
  startPayment,
  startReceiver,
  startTestChain,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prom-text.ts";
import { startRpcProxy } from "../helpers/proxy.ts";
import { openEventStream } from "../helpers/sse.ts";

const PAYER = ANVIL_ACCOUNTS[1] as Hex;

let chain: TestChain;
let cluster: PostgresCluster;
const dir = tempDir();
const children: DaemonChild[] = [];
beforeAll(async () => {
  [chain, cluster] = await Promise.all([startTestChain(), startPostgres()]);
  await chain.mint(chain.token, PAYER, tokens(1_000_000));
});
afterAll(async () => {
  await Promise.all(children.map((child) => child.kill9()));
  await Promise.all([chain?.stop(), cluster?.remove()]);
  dir.cleanup();
});

/** `count` replicas of one config on database `name`; the first to start leads. */
async function replicas(
  name: string,
  count: number,
  {
    rpcUrl = chain.rpcUrl,
    token = chain.token,
    postbacks = {},
    chainSettings = {},
  }: {
    rpcUrl?: string;
    token?: Hex;
    postbacks?: Record<string, unknown>;
    chainSettings?: Record<string, unknown>;
  } = {},
) {
  const url = await cluster.createDatabase(name);
  const config = writeDaemonConfig(dir.path, {
    rpcUrl,
    token,
    dbPath: { url },
    postbacks,
    chain: chainSettings,
    name: `${name}.json`,
  });
  const started: DaemonChild[] = [];
  // One after another: the first creates the schema, the others find it.
  for (let i = 0; i < count; i++) {
    const child = await spawnDaemon(config);
    children.push(child);
    started.push(child);
  }
  return { url, config, replicas: started };
}

/** The ops URL a child logged ("daemon started"). */
async function opsUrlOf(child: DaemonChild): Promise<string> {
  const line = JSON.parse(await child.waitForLog('"daemon started"')) as { ops_url: string };
  return line.ops_url;
}

async function isLeader(child: DaemonChild): Promise<boolean> {
  const text = await (await fetch(`${await opsUrlOf(child)}/metrics`)).text();
  return sampleValue(parsePrometheusText(text), "oxbtcpay_is_leader") === 1;
}

/** The one replica that leads, once exactly one does. */
async function leaderOf(children: readonly DaemonChild[]): Promise<DaemonChild> {
  return waitFor(
    async () => {
      const alive = children.filter(
        (c) => c.child.exitCode === null && c.child.signalCode === null,
      );
      const leading = (await Promise.all(alive.map(isLeader))).flatMap((yes, i) =>
        yes ? [alive[i] as DaemonChild] : [],
      );
      return leading.length === 1 ? leading[0] : undefined;
    },
    { what: "exactly one leader", timeoutMs: 30_000 },
  );
}

async function query<T>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as T[];
  } finally {
    await client.end();
  }
}

describe("replicas on one PostgreSQL", () => {
  test("three replicas create payments at once: every address distinct, every derivation index used once; exactly one leads", async () => {
    const { url, replicas: three } = await replicas("create", 3);
    const PER_REPLICA = 60;
    // order_id idempotency holds across replicas too: the same order id on
    // all three at once, amid the other creates, is one payment.
    const sameOrder = (replica: DaemonChild) =>
      startPayment(replica.privateUrl, {
        amount: "1",
        data: null,
        postback_url: null,
        order_id: "order-across-replicas",
      });
    const [created, same] = await Promise.all([
      Promise.all(
        three.flatMap((replica, r) =>
          Array.from({ length: PER_REPLICA }, (_, i) =>
            startPayment(replica.privateUrl, {
              amount: "0.5",
              data: `r${r}-${i}`,
              postback_url: null,
            }),
          ),
        ),
      ),
      Promise.all(three.flatMap((replica) => [sameOrder(replica), sameOrder(replica)])),
    ]);
    expect(new Set(same.map((p) => p.id)).size).toBe(1);

    const rows = await query<{ derivation_index: string; address: string }>(
      url,
      "SELECT derivation_index, address FROM payments ORDER BY derivation_index",
    );
    const total = 3 * PER_REPLICA + 1;
    expect(rows).toHaveLength(total);
    expect(rows.map((row) => Number(row.derivation_index))).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
    expect(new Set(rows.map((row) => row.address)).size).toBe(total);
    expect(new Set(created.map((p) => p.address)).size).toBe(3 * PER_REPLICA);
    // Any replica answers for a payment another one created.
    const last = created.at(-1) as { id: string };
    for (const replica of three) {
      expect((await status(replica.publicUrl, last.id)).body.status).toBe("waiting");
    }
    await leaderOf(three);
  });
});

describe("changes reach every replica", () => {
  test("a payment the leader sees paid is pushed on a follower's live stream and served by its status.json (LISTEN/NOTIFY)", async () => {
    const { replicas: two } = await replicas("live", 2, { chainSettings: { confirmations: 1 } });
    const leader = await leaderOf(two);
    const follower = two.find((child) => child !== leader) as DaemonChild;
    const payment = await startPayment(follower.privateUrl, {
      amount: "0.5",
      data: null,
      postback_url: null,
    });
    const stream = await openEventStream(`${follower.publicUrl}/${payment.id}/events`);
    const statusOf = async () => {
      for (;;) {
        const block = await stream.nextMessage(20_000);
        const body = JSON.parse(block.data) as { status: string };
        if (body.status !== "waiting") return body.status;
      }
    };
    // The follower's first answer: waiting (and cached).
    expect((await status(follower.publicUrl, payment.id)).body.status).toBe("waiting");
    await chain.transfer({
      token: chain.token,
      from: PAYER,
      to: payment.address,
      value: tokens(1) / 2n,
    });
    await chain.mine(1);
    // Pushed by the follower, which scans nothing: the leader's commit reached it.
    expect(["seen", "paid"]).toContain(await statusOf());
    await waitFor(
      async () => (await status(follower.publicUrl, payment.id)).body.status === "paid",
      { what: "paid on the follower's status.json", timeoutMs: 20_000 },
    );
    stream.close();
  });
});

const alive = (child: DaemonChild) =>
  child.child.exitCode === null && child.child.signalCode === null;

describe("failover", () => {
  test("kill -9 the leader three times in the middle of a 250-transfer scan: another replica takes over, every payment ends where balanceOf says, no transfer twice, every postback delivered (repeats only under one webhook-id)", async () => {
    const PAYMENTS = 100;
    const PER_TX = 10;
    const TXS = 25;
    // A chain of its own: the replicas of every test here derive the same
    // addresses (one xpub, indexes from 0), and balanceOf must see this test's funds only.
    const own = await startTestChain();
    await own.mint(own.token, PAYER, tokens(1_000_000));
    const shop = await startReceiver();
    // A slow provider: the backlog takes the leader many batches, long enough to kill it midway.
    const proxy = await startRpcProxy(own.rpcUrl);
    const startBlock = Number(await own.client.getBlockNumber()) + 1;
    const {
      url,
      config,
      replicas: group,
    } = await replicas("failover", 3, {
      rpcUrl: proxy.url,
      token: own.token,
      postbacks: { timeoutMs: 2_000 },
      chainSettings: { startBlock, maxBlockRange: 2, confirmations: 1 },
    });
    const payments = await Promise.all(
      Array.from({ length: PAYMENTS }, (_, i) =>
        startPayment((group[i % group.length] as DaemonChild).privateUrl, {
          amount: "1",
          data: `order-${i}`,
          postback_url: shop.url,
        }),
      ),
    );
    // The chain moves on while the provider fails: a backlog builds up.
    proxy.setMode("http500");
    let sent = 0;
    for (let tx = 0; tx < TXS; tx++) {
      const to: Hex[] = [];
      const values: bigint[] = [];
      for (let k = 0; k < PER_TX; k++) {
        to.push((payments[sent % PAYMENTS] as { address: Hex }).address);
        // Full, partial and over: some payments end paid, some not.
        values.push(((BigInt(sent) * 7919n) % tokens(1)) + 40_000_000n);
        sent++;
      }
      await own.client.writeContract({
        address: own.token,
        abi: testTokenAbi,
        functionName: "transferMany",
        args: [to, values],
        account: PAYER,
        chain: own.client.chain,
      });
      await own.mine(3);
    }
    const head = Number(await own.client.getBlockNumber());
    proxy.setHook(async () => {
      await new Promise((r) => setTimeout(r, 10));
      return undefined;
    });
    proxy.setMode("pass");

    const cursor = async () =>
      Number(
        (await query<{ block_number: string }>(url, "SELECT block_number FROM chain_cursor"))[0]
          ?.block_number ?? -1,
      );
    const span = head - startBlock;
    const killedAt: number[] = [];
    for (const fraction of [0.2, 0.45, 0.7]) {
      const point = startBlock + Math.floor(span * fraction);
      await waitFor(async () => (await cursor()) >= point, {
        timeoutMs: 60_000,
        what: `cursor at ${point}`,
      });
      const leader = await leaderOf(group.filter(alive));
      await leader.kill9();
      killedAt.push(await cursor());
      // Another replica takes over and moves the scan on; the killed one comes back.
      const before = await cursor();
      const replacement = await spawnDaemon(config);
      children.push(replacement);
      group.push(replacement);
      await waitFor(async () => (await cursor()) > before || (await cursor()) >= head, {
        timeoutMs: 30_000,
        what: "the scan moving under a new leader",
      });
    }
    expect(killedAt.every((at) => at < head)).toBe(true);
    await waitFor(async () => (await cursor()) >= head, { timeoutMs: 60_000, what: "scan done" });

    const [counts] = await query<{ n: string; d: string }>(
      url,
      "SELECT count(*) AS n, count(DISTINCT (network, tx_hash, log_index)) AS d FROM transfers",
    );
    expect(counts).toEqual({ n: String(TXS * PER_TX), d: String(TXS * PER_TX) });
    const rows = await query<{ id: string; address: Hex; paid_amount: string; status: string }>(
      url,
      "SELECT id, address, paid_amount::text, status FROM payments",
    );
    const paid = new Set<string>();
    for (const row of rows) {
      const balance = await own.balanceOf(own.token, row.address);
      expect(BigInt(row.paid_amount), row.id).toBe(balance);
      expect(row.status === "paid", row.id).toBe(balance >= tokens(1));
      if (row.status === "paid") paid.add(row.id);
    }
    expect(paid.size).toBeGreaterThan(0);
    expect(paid.size).toBeLessThan(PAYMENTS);

    // Every paid payment's postback reached the shop; a repeat (a replica
    // killed mid-delivery) carries the same webhook-id.
    await waitFor(
      async () => {
        const [pending] = await query<{ n: string }>(
          url,
          "SELECT count(*) AS n FROM events WHERE state <> 'delivered'",
        );
        return pending?.n === "0";
      },
      { timeoutMs: 60_000, what: "every postback delivered" },
    );
    const events = await query<{ id: string; payment_id: string }>(
      url,
      "SELECT id, payment_id FROM events",
    );
    expect(new Set(events.map((e) => e.payment_id))).toEqual(paid);
    const idsByPayment = new Map<string, Set<string>>();
    for (const request of shop.received) {
      const body = JSON.parse(request.body) as { data: string };
      // The shop's `data` comes back as it was given: a JSON string.
      const key = JSON.parse(body.data) as string;
      if (!payments.some((_, i) => `order-${i}` === key)) {
        throw new Error(`a postback for no payment: ${request.body}`);
      }
      const ids = idsByPayment.get(key) ?? new Set<string>();
      ids.add(String(request.headers["webhook-id"]));
      idsByPayment.set(key, ids);
    }
    expect(idsByPayment.size).toBe(paid.size);
    for (const ids of idsByPayment.values()) expect(ids.size).toBe(1);
    await proxy.close();
    await shop.close();
    await own.stop();
  });
});

describe("PostgreSQL restart", () => {
  test("the server stops while two replicas run: they report not ready, then reconnect by themselves; nothing is lost and new payments work", async () => {
    const { url, replicas: two } = await replicas("restart", 2, {
      chainSettings: { confirmations: 1 },
    });
    const before = await startPayment((two[0] as DaemonChild).privateUrl, {
      amount: "0.5",
      data: "before",
      postback_url: null,
    });
    const readyz = async (child: DaemonChild) =>
      (await fetch(`${await opsUrlOf(child)}/readyz`)).status;
    // A block so that the leader's cursor is fresh for both replicas' readiness.
    await chain.mine(1);
    await waitFor(async () => (await Promise.all(two.map(readyz))).every((s) => s === 200), {
      what: "both ready",
      timeoutMs: 30_000,
    });

    await cluster.stop();
    await waitFor(async () => (await Promise.all(two.map(readyz))).every((s) => s === 503), {
      what: "both not ready while the server is down",
      timeoutMs: 30_000,
    });
    // Shoppers' status pages and the shop's calls fail cleanly meanwhile, no replica exits.
    const down = await rpc((two[1] as DaemonChild).privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "start_payment",
      params: { amount: "0.5", data: null, postback_url: null },
    });
    expect(down.json.error).toBeDefined();
    expect(two.every(alive)).toBe(true);

    await cluster.start();
    await chain.mine(1);
    await waitFor(async () => (await Promise.all(two.map(readyz))).every((s) => s === 200), {
      what: "both ready again",
      timeoutMs: 60_000,
    });
    await leaderOf(two);
    const after = await startPayment((two[1] as DaemonChild).privateUrl, {
      amount: "0.5",
      data: "after",
      postback_url: null,
    });
    // The payment from before the restart is there, and both are paid by one scan.
    for (const p of [before, after]) {
      await chain.transfer({
        token: chain.token,
        from: PAYER,
        to: p.address,
        value: tokens(1) / 2n,
      });
    }
    await chain.mine(2);
    for (const p of [before, after]) {
      await waitFor(
        async () => (await status((two[0] as DaemonChild).publicUrl, p.id)).body.status === "paid",
        { what: `${p.id} paid`, timeoutMs: 30_000 },
      );
    }
    const [count] = await query<{ n: string }>(url, "SELECT count(*) AS n FROM payments");
    expect(count?.n).toBe("2");
  });
});
