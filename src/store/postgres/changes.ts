/**
 * The change feed across replicas: a dedicated connection LISTENs on
 * {@link CHANGES_CHANNEL}, where each commit that wrote says so and names
 * the payments it changed (queries.ts `notifyChanged`). A nudge only: the
 * database is the truth, and a replica that lost its connection may have
 * missed nudges, so after every reconnect `onReconnect` tells it to drop
 * whatever it cached.
 */
import pg from "pg";
import type { Clock } from "../../internal/clock.ts";
import { CHANGES_CHANNEL, type ChangeNotice, parseChangePayload } from "./queries.ts";

export type ChangeListener = {
  /** Whether the LISTEN connection is up now. */
  listening(): boolean;
  /** Listens (reconnecting every `retryIntervalMs`) until `signal` aborts. Never rejects. */
  run(signal: AbortSignal): Promise<void>;
};

export function listenForChanges({
  url,
  clock,
  onChange,
  onReconnect,
  onError = () => {},
  retryIntervalMs = 1_000,
}: {
  url: string;
  clock: Clock;
  /**
   * What a commit said it changed; `sender` is the process id of the
   * server backend that sent it (the connection that committed).
   */
  onChange(notice: ChangeNotice, sender: number): void;
  /** Called after each (re)connection but the first: nudges may have been missed meanwhile. */
  onReconnect(): void;
  onError?(error: unknown): void;
  retryIntervalMs?: number;
}): ChangeListener {
  let up = false;
  let connections = 0;

  async function session(signal: AbortSignal): Promise<void> {
    const client = new pg.Client({ connectionString: url, keepAlive: true });
    const lost = new AbortController();
    client.on("error", (error) => {
      onError(error);
      lost.abort();
    });
    client.on("end", () => lost.abort());
    client.on("notification", (message) => {
      if (message.channel === CHANGES_CHANNEL) {
        onChange(parseChangePayload(message.payload ?? ""), message.processId);
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
      up = true;
      if (connections++ > 0) onReconnect();
      const both = AbortSignal.any([signal, lost.signal]);
      await new Promise<void>((resolve) => {
        if (both.aborted) resolve();
        else both.addEventListener("abort", () => resolve(), { once: true });
      });
    } catch (error) {
      if (!signal.aborted) onError(error);
    } finally {
      up = false;
      await client.end().catch(() => {});
    }
  }

  return {
    listening: () => up,
    async run(signal) {
      while (!signal.aborted) {
        await session(signal);
        if (!signal.aborted) await clock.sleep(retryIntervalMs, signal);
      }
    },
  };
}
