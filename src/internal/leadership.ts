/**
 * Leadership among replicas sharing one PostgreSQL: the replica holding a
 * session advisory lock on its own dedicated connection is the leader (it
 * alone runs the chain watchers and the deadline sweep). The lock belongs to
 * that connection, so leadership is lost the moment the connection is: the
 * process dies (the kernel closes its socket and the server releases the
 * lock at once), the server restarts, or the link breaks.
 *
 * Bounds (with the defaults): after a leader dies, another replica is
 * elected within `retryIntervalMs` (1 s) plus one query. After a silent
 * network partition, the server drops the leader's connection after its
 * TCP keepalive gives up (idle 5 s + 3 probes of 1 s = 8 s, set on the
 * session below) and a follower is elected within 1 s after that; the
 * partitioned leader itself steps down when its heartbeat (every
 * `heartbeatIntervalMs`, timeout `heartbeatTimeoutMs`) fails, within
 * 1 s + 2 s = 3 s, before the server can hand the lock to anyone else.
 *
 * Leadership is not trusted alone: a deposed leader that still writes finds
 * its cursor moved (compare-and-set) and its transfers already recorded.
 */
import pg from "pg";
import type { Clock } from "./clock.ts";
import { errorMessage } from "./errors.ts";
import type { Logger } from "./logger.ts";

/** Advisory lock key of the scanner's leadership: the ASCII of "0xbtcldr". */
export const LEADERSHIP_LOCK_KEY = 0x3078_6274_636c_6472n;

export type Leadership = {
  /** Whether this replica holds the lock now (as far as it knows: see the module note). */
  isLeader(): boolean;
  /**
   * Contends for leadership until `signal` aborts: then releases the lock
   * (if held) and closes the connection. Never rejects.
   */
  run(signal: AbortSignal): Promise<void>;
};

/**
 * @param onElected Called each time this replica becomes leader, with a
 *   signal aborted when that term ends (connection lost, heartbeat failed,
 *   or the run stopped). The leader's work runs until it aborts.
 */
export function createLeadership({
  url,
  clock,
  logger,
  onElected,
  key = LEADERSHIP_LOCK_KEY,
  retryIntervalMs = 1_000,
  heartbeatIntervalMs = 1_000,
  heartbeatTimeoutMs = 2_000,
}: {
  url: string;
  clock: Clock;
  logger: Logger;
  onElected(term: AbortSignal): void;
  key?: bigint;
  retryIntervalMs?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
}): Leadership {
  const log = logger.child({ module: "leadership" });
  let leading = false;

  /** One connection's life: try the lock until held, then heartbeat until it fails. */
  async function session(signal: AbortSignal): Promise<void> {
    const client = new pg.Client({
      connectionString: url,
      keepAlive: true,
      connectionTimeoutMillis: heartbeatTimeoutMs * 2,
      query_timeout: heartbeatTimeoutMs,
    });
    const lost = new AbortController();
    client.on("error", () => lost.abort());
    client.on("end", () => lost.abort());
    const both = AbortSignal.any([signal, lost.signal]);
    let term: AbortController | undefined;
    try {
      await client.connect();
      // NOTE: the server notices a silently vanished replica by TCP
      // keepalive; its default (2 h) would keep the lock that long.
      await client.query(
        "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3",
      );
      while (!both.aborted) {
        const { rows } = await client.query<{ held: boolean }>(
          "SELECT pg_try_advisory_lock($1) AS held",
          [key.toString()],
        );
        if (rows[0]?.held) break;
        await clock.sleep(retryIntervalMs, both);
      }
      if (both.aborted) return;
      leading = true;
      term = new AbortController();
      log.info("elected leader: this replica runs the chain watchers and the deadline sweep");
      onElected(term.signal);
      while (!both.aborted) {
        await clock.sleep(heartbeatIntervalMs, both);
        if (both.aborted) break;
        await client.query("SELECT 1");
      }
    } catch (error) {
      if (!signal.aborted) log.warn({ err: errorMessage(error) }, "leadership connection failed");
    } finally {
      if (term) {
        leading = false;
        term.abort();
        if (!signal.aborted) log.warn("leadership lost: watchers and deadline sweep stopped");
        else log.info("leadership released");
      }
      // Closing the session releases the lock; an explicit unlock first makes
      // it immediate for the others even if the close is slow.
      if (term && signal.aborted && !lost.signal.aborted) {
        await client.query("SELECT pg_advisory_unlock($1)", [key.toString()]).catch(() => {});
      }
      await client.end().catch(() => {});
    }
  }

  return {
    isLeader: () => leading,
    async run(signal) {
      while (!signal.aborted) {
        await session(signal);
        if (!signal.aborted) await clock.sleep(retryIntervalMs, signal);
      }
    },
  };
}
