/**
 * The checkpointer's worker thread: its own connection to the database (with
 * the durability settings every open gets), running passive WAL checkpoints
 * one after another. It writes no rows; see ./checkpoint.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { lowerThreadPriority } from "../../internal/background.ts";
import { openDatabase } from "./index.ts";

lowerThreadPriority();

const { path, intervalMs, assistFrames } = workerData as {
  path: string;
  intervalMs: number;
  assistFrames: number;
};

type CheckpointRow = { busy: number; log: number; checkpointed: number };

const db = openDatabase({ path, migrate: false });
let timer: NodeJS.Timeout | undefined;

function pass(): void {
  try {
    // PASSIVE: copies what it can without waiting for, or blocking, the writer.
    const [row] = db.pragma("wal_checkpoint(PASSIVE)") as CheckpointRow[];
    const walFrames = row?.log ?? 0;
    if (walFrames >= assistFrames) {
      // Hand over to the main thread, and stay out of its way until it answers.
      parentPort?.postMessage({ kind: "assist", walFrames });
      return;
    }
    parentPort?.postMessage({ kind: "pass", walFrames });
    // While the WAL has frames, go again at once: the writer may be between commits.
    timer = setTimeout(pass, walFrames > 0 ? 0 : intervalMs);
  } catch (error) {
    parentPort?.postMessage({ kind: "error", message: (error as Error).message });
    db.close();
  }
}

parentPort?.on("message", (message: string) => {
  if (message === "resume") {
    timer = setTimeout(pass, 0);
  } else if (message === "stop") {
    clearTimeout(timer);
    db.close();
    parentPort?.close();
  }
});

parentPort?.postMessage({ kind: "ready" });
pass();
