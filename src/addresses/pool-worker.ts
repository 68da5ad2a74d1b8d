/**
 * The address pool's worker thread: derives deposit addresses ahead of use,
 * off the daemon's main thread. Watch-only, like everything else: it gets the
 * xpub and sends back addresses.
 */
import { parentPort, workerData } from "node:worker_threads";
import { lowerThreadPriority } from "../internal/background.ts";
import { createFastAddressDeriver } from "./fast.ts";

lowerThreadPriority();

const deriver = createFastAddressDeriver({ xpub: (workerData as { xpub: string }).xpub });

/**
 * A chunk in one batch; if that throws (an invalid BIP32 child, about 2^-127
 * per index), one by one, leaving out the indexes that fail: the pool then
 * derives those on the spot, where the payment gets the error.
 */
function deriveChunk(from: number, count: number): (string | null)[] {
  try {
    return deriver.deriveRange(from, count);
  } catch {
    return Array.from({ length: count }, (_, i) => {
      try {
        return deriver.derive(from + i);
      } catch {
        return null;
      }
    });
  }
}

parentPort?.on("message", ({ from, count }: { from: number; count: number }) => {
  parentPort?.postMessage({ from, addresses: deriveChunk(from, count) });
});
