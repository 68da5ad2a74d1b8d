/**
 * WAL checkpoints off the main thread, during bursts of writes.
 *
 * SQLite checkpoints (copies the WAL back into the database file and fsyncs
 * it) in whichever connection commits when the WAL passes
 * `wal_autocheckpoint` pages: with the daemon's one connection, that is the
 * main thread, which then stops answering for the whole copy. Under a burst
 * of checkouts those stalls (10 to 30 ms) were the slowest start_payment
 * answers. Here a worker thread with its own connection runs passive
 * checkpoints continuously, and the main connection's automatic checkpoint is
 * raised to a safety net it only reaches if the worker falls behind; if the
 * worker fails, the default comes back and SQLite checkpoints as before.
 *
 * SQLite starts the WAL over from its beginning (instead of growing it) only
 * when a checkpoint has copied every frame by the time of the next write.
 * Under a steady stream of commits the worker's pass never quite ends before
 * the next one, so once the WAL passes {@link ASSIST_FRAMES}, the worker
 * pauses and the main thread runs one passive checkpoint itself: it only
 * copies what was committed since the worker's last pass (a fraction of a
 * millisecond), and its next write starts the WAL over.
 *
 * The worker (an extra V8 isolate: tens of MB) starts with the first burst
 * (`touch`, called by start_payment's group commit) and stops after `idleMs`
 * without one, like the address pool: a daemon that only serves status.json
 * does not carry it.
 */
import { Worker } from "node:worker_threads";
import { workerModule } from "../../internal/background.ts";
import { errorMessage } from "../../internal/errors.ts";
import type { Logger } from "../../internal/logger.ts";
import type { Db } from "./index.ts";

/** SQLite's default `wal_autocheckpoint`, in pages. */
export const DEFAULT_AUTOCHECKPOINT = 1000;
/** The main connection's own checkpoint while the worker runs: a safety net only. */
export const SAFETY_NET_AUTOCHECKPOINT = 10_000;
/** WAL size (pages) from which the main thread helps the WAL start over. */
export const ASSIST_FRAMES = 2_000;

export type Checkpointer = {
  /**
   * Starts the worker if it is not running and keeps it from idling out.
   * Resolves true once it runs, false if it cannot (SQLite's default applies).
   */
  touch(): Promise<boolean>;
  running(): boolean;
  /** Passes the worker has completed so far. */
  passes(): number;
  /** Times the main thread finished a pass so the WAL could start over. */
  assists(): number;
  close(): Promise<void>;
};

type WorkerMessage =
  | { kind: "ready" }
  | { kind: "pass"; walFrames: number }
  | { kind: "assist"; walFrames: number }
  | { kind: "error"; message: string };

export function startCheckpointer({
  db,
  path,
  logger,
  intervalMs = 50,
  idleMs = 60_000,
}: {
  /** The main connection, whose automatic checkpoint this takes over. */
  db: Db;
  /** The same database file, opened again by the worker. */
  path: string;
  logger: Logger;
  /** Pause between two passes when the WAL is empty. */
  intervalMs?: number;
  /** The worker stops after this long without a `touch`. */
  idleMs?: number;
}): Checkpointer {
  const log = logger.child({ module: "store" });
  let passes = 0;
  let assists = 0;
  let closed = false;
  let failed = false;
  let lastTouch = 0;
  let worker: Worker | undefined;
  let ready: Promise<boolean> = Promise.resolve(false);
  /** Settles `ready` of the current worker (once). */
  let settle: (ok: boolean) => void = () => {};
  let idleTimer: NodeJS.Timeout | undefined;

  const autocheckpoint = (pages: number) => {
    if (db.open) db.pragma(`wal_autocheckpoint = ${pages}`);
  };

  /** Stops the current worker, if any, and gives checkpoints back to SQLite. */
  function stop(): Worker | undefined {
    const current = worker;
    worker = undefined;
    settle(false); // stopped before it was ready
    if (idleTimer) clearInterval(idleTimer);
    idleTimer = undefined;
    autocheckpoint(DEFAULT_AUTOCHECKPOINT);
    return current;
  }

  /** Asks `current` to close its connection and exit; terminates it if it does not. */
  async function retire(current: Worker | undefined): Promise<void> {
    if (!current) return;
    const exited = new Promise<void>((resolve) => current.once("exit", () => resolve()));
    current.postMessage("stop");
    const timeout = setTimeout(() => void current.terminate(), 2000);
    await exited;
    clearTimeout(timeout);
  }

  function start(): Promise<boolean> {
    ready = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    const fallBack = (started: Worker | undefined, why: string) => {
      if (started && worker !== started) return;
      failed = true;
      void stop()?.terminate();
      log.warn({ err: why }, "WAL checkpointer stopped: checkpoints run in the main thread again");
    };
    try {
      const started = new Worker(workerModule("checkpoint-worker", import.meta.url), {
        workerData: { path, intervalMs, assistFrames: ASSIST_FRAMES },
      });
      worker = started;
      started.unref();
      started.on("message", (message: WorkerMessage) => {
        if (worker !== started) return;
        if (message.kind === "ready") {
          autocheckpoint(SAFETY_NET_AUTOCHECKPOINT);
          settle(true);
        } else if (message.kind === "pass") {
          passes++;
        } else if (message.kind === "assist") {
          passes++;
          if (!db.open) return;
          // The worker waits for "resume": the checkpoint lock is free.
          db.pragma("wal_checkpoint(PASSIVE)");
          assists++;
          started.postMessage("resume");
        } else {
          fallBack(started, message.message);
        }
      });
      started.on("error", (error) => fallBack(started, errorMessage(error)));
      started.on("exit", (code) => fallBack(started, `worker exited with code ${code}`));
      idleTimer = setInterval(
        () => {
          if (Date.now() - lastTouch > idleMs) void retire(stop());
        },
        Math.max(10, Math.min(1000, idleMs / 2)),
      );
      idleTimer.unref();
    } catch (error) {
      fallBack(undefined, errorMessage(error));
    }
    return ready;
  }

  return {
    touch() {
      lastTouch = Date.now();
      if (closed || failed) return Promise.resolve(false);
      return worker ? ready : start();
    },
    running: () => worker !== undefined,
    passes: () => passes,
    assists: () => assists,
    async close() {
      if (closed) return;
      closed = true;
      await retire(stop());
    },
  };
}
