/**
 * Background worker threads (address derivation ahead of use, WAL
 * checkpoints) give way to the main thread, which answers the shop and the
 * shoppers: on a 2-core machine they otherwise take its core at the worst
 * moment and show up as the slowest answers.
 */
import { setPriority } from "node:os";

/** Nice value of background threads (0 is normal, 19 the lowest priority). */
export const BACKGROUND_NICE = 10;

/**
 * Lowers the calling worker thread's CPU priority. Linux only: there the
 * nice value belongs to the thread (setpriority on the calling thread's id);
 * elsewhere it would lower the whole daemon, so this does nothing.
 */
export function lowerThreadPriority(): boolean {
  if (process.platform !== "linux") return false;
  try {
    setPriority(BACKGROUND_NICE);
    return true;
  } catch {
    return false;
  }
}

/**
 * URL of the worker module `name` beside the module that starts it
 * (`callerUrl`: its `import.meta.url`). Compiled (dist/, production), that is
 * `name.js`, the worker itself. Run from the TypeScript sources (`npm start`,
 * the tests), it is `name.mjs`, a bootstrap that loads `name.ts` through tsx:
 * a worker thread does not inherit the loader its parent registered.
 */
export function workerModule(name: string, callerUrl: string): URL {
  return new URL(callerUrl.endsWith(".ts") ? `./${name}.mjs` : `./${name}.js`, callerUrl);
}
