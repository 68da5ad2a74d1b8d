/**
 * Several daemons on one PostgreSQL (issue: replicas): each is a real
 * `0xbtcpay serve` process on the same config, against a throwaway cluster
 * and a real anvil chain. Any replica may die (kill -9) or lose the
 * database; no payment is missed, doubled or left unannounced.
 */
import { join } from "node:path";
import pg from "pg";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { testTokenAbi } from "../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS } from "../src/chain/anvil.ts";
import { type DaemonChild, spawnDaemon, writeDaemonConfig } from "./helpers/cli.ts";
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
} from "./helpers/index.ts";
import { type PostgresCluster, startPostgres } from "./helpers/postgres.ts";
import { parsePrometheusText, sampleValue } from "./helpers/prom-text.ts";

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
async function replicas(name: string, count: number, postbacks: Record<string, unknown> = {}) {
  const url = await cluster.createDatabase(name);
  const config = writeDaemonConfig(dir.path, {
    rpcUrl: chain.rpcUrl,
    token: chain.token,
    dbPath: { url },
    postbacks,
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
    const created = await Promise.all(
      three.flatMap((replica, r) =>
        Array.from({ length: PER_REPLICA }, (_, i) =>
          startPayment(replica.privateUrl, {
            amount: "0.5",
            data: `r${r}-${i}`,
            postback_url: null,
          }),
        ),
      ),
    );
    // order_id idempotency holds across replicas too: the same order id on
    // all three at once is one payment.
    const same = await Promise.all(
      three.map((replica) =>
        startPayment(replica.privateUrl, {
          amount: "1",
          data: null,
          postback_url: null,
          order_id: "order-across-replicas",
        }),
      ),
    );
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
