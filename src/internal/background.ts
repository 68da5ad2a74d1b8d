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
