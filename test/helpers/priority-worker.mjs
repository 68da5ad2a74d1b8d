// Worker for test/internal/background.test.ts: lowers its own priority, reports what it sees.
import { getPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { lowerThreadPriority } = await import("../../src/internal/background.ts");
const lowered = lowerThreadPriority();
parentPort?.postMessage({ lowered, priority: getPriority() });
