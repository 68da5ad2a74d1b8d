import { getPriority } from "node:os";
import { Worker } from "node:worker_threads";
import { expect, test } from "vitest";
import { BACKGROUND_NICE } from "../../src/internal/background.ts";

test.runIf(process.platform === "linux")(
  "a background worker lowers its own thread's priority, not the main thread's",
  async () => {
    const before = getPriority();
    const worker = new Worker(new URL("../helpers/priority-worker.mjs", import.meta.url));
    try {
      const seen = await new Promise<{ lowered: boolean; priority: number }>((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      expect(seen).toEqual({ lowered: true, priority: BACKGROUND_NICE });
      expect(getPriority()).toBe(before);
    } finally {
      await worker.terminate();
    }
  },
);
