/**
 * The address pool's worker thread: derives deposit addresses ahead of use,
 * off the daemon's main thread. Watch-only, like everything else: it gets the
 * xpub and sends back addresses.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createFastAddressDeriver } from "./fast.ts";

const deriver = createFastAddressDeriver({ xpub: (workerData as { xpub: string }).xpub });

parentPort?.on("message", ({ from, count }: { from: number; count: number }) => {
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(deriver.derive(from + i));
  parentPort?.postMessage({ from, addresses });
});
