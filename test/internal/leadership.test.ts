/**
 * Leadership by a PostgreSQL advisory lock on a real cluster: one leader at
 * a time among replicas, lost with its connection (terminated, the server
 * stopped, the process killed with SIGKILL), and taken over by another.
 */
import { spawn } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createClock } from "../../src/internal/clock.ts";
import { createLeadership, LEADERSHIP_LOCK_KEY } from "../../src/internal/leadership.ts";
import { createLogger } from "../../src/internal/logger.ts";
import { waitFor } from "../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.ts";

let cluster: PostgresCluster;
let url: string;
const clock = createClock();
const logger = createLogger({ level: "silent" });
/** Short intervals: these tests wait on elections. */
const INTERVALS = { retryIntervalMs: 100, heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000 };

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase("leadership");
});
afterAll(async () => {
  await cluster?.remove();
});

/** The server's view: how many sessions hold the leadership lock. */
async function holders(): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const key = LEADERSHIP_LOCK_KEY;
    const { rows } = await client.query<{ count: string }>(
      `SELECT count(*) AS count FROM pg_locks WHERE locktype = 'advisory' AND granted
        AND classid = $1 AND objid = $2`,
      [Number(key >> 32n), Number(key & 0xffff_ffffn)],
    );
    return Number(rows[0]?.count);
  } finally {
    await client.end();
  }
}

/** A contender: its terms (started, ended) and a stop. */
function replica(name: string) {
  const controller = new AbortController();
  const terms: Array<{ ended: boolean }> = [];
  const leadership = createLeadership({
    url,
    clock,
    logger,
    ...INTERVALS,
    onElected(term) {
      const record = { ended: false };
      terms.push(record);
      term.addEventListener("abort", () => {
        record.ended = true;
      });
    },
  });
  const running = leadership.run(controller.signal);
  return {
    name,
    leadership,
    terms,
    async stop() {
      controller.abort();
      await running;
    },
  };
}

describe("leadership", () => {
  test("three replicas: one leader; when it stops, another takes over; the lock is held once", async () => {
    const replicas = ["a", "b", "c"].map(replica);
    try {
      const leaders = () => replicas.filter((r) => r.leadership.isLeader());
      const first = await waitFor(() => leaders().length === 1 && leaders()[0], {
        what: "a leader",
      });
      await clock.sleep(300);
      expect(leaders()).toEqual([first]);
      expect(await holders()).toBe(1);
      await first.stop();
      expect(first.terms).toEqual([{ ended: true }]);
      const second = await waitFor(
        () => leaders().length === 1 && leaders()[0] !== first && leaders()[0],
        { what: "a new leader" },
      );
      expect(second.terms).toEqual([{ ended: false }]);
      expect(await holders()).toBe(1);
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
    expect(await holders()).toBe(0);
  });

  test("a leader whose connection the server terminates steps down; a leader is elected again", async () => {
    const replicas = ["a", "b"].map(replica);
    try {
      const first = await waitFor(() => replicas.find((r) => r.leadership.isLeader()));
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objid = $1`,
        [Number(LEADERSHIP_LOCK_KEY & 0xffff_ffffn)],
      );
      await admin.end();
      await waitFor(() => first.terms[0]?.ended, { what: "the first term to end" });
      await waitFor(() => replicas.some((r) => r.leadership.isLeader()), { what: "a leader" });
      const terms = replicas.reduce((sum, r) => sum + r.terms.length, 0);
      expect(terms).toBe(2);
      expect(await holders()).toBe(1);
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
  });

  test("while the server is down nobody leads; after it is back, one replica does", async () => {
    const replicas = ["a", "b"].map(replica);
    try {
      await waitFor(() => replicas.some((r) => r.leadership.isLeader()), { what: "a leader" });
      await cluster.stop();
      await waitFor(() => replicas.every((r) => !r.leadership.isLeader()), {
        what: "no leader",
      });
      expect(replicas.flatMap((r) => r.terms)).toEqual([{ ended: true }]);
      await cluster.start();
      await waitFor(() => replicas.filter((r) => r.leadership.isLeader()).length === 1, {
        what: "a leader again",
        timeoutMs: 30_000,
      });
      expect(await holders()).toBe(1);
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
  });

  test("a leader process killed with SIGKILL releases the lock at once; a replica takes over", async () => {
    const follower = replica("follower");
    // A leader in a child process: takes the lock, says so, then waits to be killed.
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import pg from "pg";
         const client = new pg.Client({ connectionString: process.env.URL });
         await client.connect();
         const { rows } = await client.query("SELECT pg_try_advisory_lock($1) AS held", [process.env.KEY]);
         process.stdout.write(rows[0].held ? "held\\n" : "refused\\n");
         setInterval(() => {}, 1000);`,
      ],
      {
        env: { ...process.env, URL: url, KEY: LEADERSHIP_LOCK_KEY.toString() },
        cwd: process.cwd(),
      },
    );
    try {
      // The follower may win the race to the free lock first: stop it until the child holds it.
      await follower.stop();
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
      });
      await waitFor(() => out.includes("\n"), { what: "the child's answer" });
      expect(out).toBe("held\n");
      const contender = replica("contender");
      try {
        await clock.sleep(300);
        expect(contender.leadership.isLeader()).toBe(false);
        child.kill("SIGKILL");
        // The server frees the dead session's lock: the contender takes it at
        // its next retry. How fast is the bench's to measure (failover_ms),
        // not a test's to assert.
        await waitFor(() => contender.leadership.isLeader(), { what: "the takeover" });
      } finally {
        await contender.stop();
      }
    } finally {
      child.kill("SIGKILL");
    }
  });
});
