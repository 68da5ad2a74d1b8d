/**
 * WAL checkpoints off the main thread.
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
 * the next one, so once the WAL passes {@link ASSIST_FRAMES}, the main thread
 * runs one passive checkpoint itself: it only copies what was committed since
 * the worker's last pass (a fraction of a millisecond), and the next write
 * then starts the WAL over.
 */
import { Worker } from "node:worker_threads";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { Db } from "./index.ts";

/** SQLite's default `wal_autocheckpoint`, in pages. */
export const DEFAULT_AUTOCHECKPOINT = 1000;
/** The main connection's own checkpoint while the worker runs: a safety net only. */
export const SAFETY_NET_AUTOCHECKPOINT = 10_000;
/** WAL size (pages) from which the main thread helps the WAL start over. */
export const ASSIST_FRAMES = 2_000;

export type Checkpointer = {
  /** Resolves when the worker has opened the database (false: it could not; the default applies). */
  ready: Promise<boolean>;
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
}: {
  /** The main connection, whose automatic checkpoint this takes over. */
  db: Db;
  /** The same database file, opened again by the worker. */
  path: string;
  logger: Logger;
  /** Pause between two passes. */
  intervalMs?: number;
}): Checkpointer {
  const log = logger.child({ module: "store" });
  let passes = 0;
  let assists = 0;
  let closed = false;
  let worker: Worker | undefined;
  let settle: (ok: boolean) => void = () => {};
  const ready = new Promise<boolean>((resolve) => {
    settle = resolve;
  });

  const fallBack = (why: string) => {
    if (closed) return;
    if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT}`);
    log.warn({ err: why }, "WAL checkpointer stopped: checkpoints run in the main thread again");
    settle(false);
    const current = worker;
    worker = undefined;
    void current?.terminate();
  };

  try {
    worker = new Worker(new URL("./checkpoint-worker.mjs", import.meta.url), {
      workerData: { path, intervalMs, assistFrames: ASSIST_FRAMES },
    });
    worker.unref();
    worker.on("message", (message: WorkerMessage) => {
      if (message.kind === "ready") {
        db.pragma(`wal_autocheckpoint = ${SAFETY_NET_AUTOCHECKPOINT}`);
        settle(true);
      } else if (message.kind === "pass") {
        passes++;
      } else if (message.kind === "assist") {
        passes++;
        if (!db.open) return;
        // The worker waits for "resume": the checkpoint lock is free.
        db.pragma("wal_checkpoint(PASSIVE)");
        assists++;
        worker?.postMessage("resume");
      } else {
        fallBack(message.message);
      }
    });
    worker.on("error", (error) => fallBack(errorMessage(error)));
    worker.on("exit", (code) => {
      if (!closed && worker) fallBack(`worker exited with code ${code}`);
    });
  } catch (error) {
    fallBack(errorMessage(error));
  }

  return {
    ready,
    passes: () => passes,
    assists: () => assists,
    async close() {
      if (closed) return;
      const current = worker;
      if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT}`);
      closed = true;
      worker = undefined;
      settle(false);
      if (!current) return;
      // Let the worker close its connection cleanly; terminate if it does not.
      const exited = new Promise<void>((resolve) => current.once("exit", () => resolve()));
      current.postMessage("stop");
      const timeout = setTimeout(() => void current.terminate(), 2000);
      await exited;
      clearTimeout(timeout);
    },
  };
}
