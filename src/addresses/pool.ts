/**
 * Deposit addresses derived ahead of use in a worker thread, so that
 * start_payment does not spend its time on elliptic-curve arithmetic.
 *
 * The pool is only a cache keyed by derivation index: the index itself is
 * still allocated from the database counter in the transaction that inserts
 * the payment, so nothing about it needs to be persisted, and an index the
 * pool has not reached yet is simply derived on the spot.
 */
import { Worker } from "node:worker_threads";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { AddressDeriver } from "./index.ts";

export type AddressPool = AddressDeriver & {
  /** Makes sure addresses from `nextIndex` on are being derived ahead. */
  prefetch(nextIndex: number): void;
  close(): Promise<void>;
};

export function createAddressPool({
  xpub,
  fallback,
  logger,
  ahead = 4096,
  chunk = 512,
}: {
  xpub: string;
  /** Derives on the spot what the pool does not have (same addresses). */
  fallback: AddressDeriver;
  logger: Logger;
  /** How many addresses to keep derived ahead of the next index. */
  ahead?: number;
  chunk?: number;
}): AddressPool {
  const log = logger.child({ module: "addresses" });
  const ready = new Map<number, string>();
  /** Every index below this one has been asked of the worker. */
  let requestedUpTo = -1;
  let closed = false;
  let worker: Worker | undefined;
  try {
    worker = new Worker(new URL("./pool-worker.mjs", import.meta.url), { workerData: { xpub } });
    worker.on("message", ({ from, addresses }: { from: number; addresses: string[] }) => {
      addresses.forEach((address, i) => {
        ready.set(from + i, address);
      });
    });
    worker.on("error", (error) => {
      log.warn({ err: errorMessage(error) }, "address pool worker failed: deriving on the spot");
      worker = undefined;
    });
    worker.unref();
  } catch (error) {
    log.warn({ err: errorMessage(error) }, "address pool unavailable: deriving on the spot");
  }

  return {
    derive(index) {
      const address = ready.get(index);
      if (address === undefined) return fallback.derive(index);
      ready.delete(index);
      return address;
    },
    prefetch(nextIndex) {
      if (!worker || closed) return;
      if (requestedUpTo < nextIndex) requestedUpTo = nextIndex;
      // Indexes below nextIndex are used: drop any leftovers.
      if (ready.size > ahead * 2) {
        for (const index of ready.keys()) if (index < nextIndex) ready.delete(index);
      }
      while (requestedUpTo < nextIndex + ahead) {
        worker.postMessage({ from: requestedUpTo, count: chunk });
        requestedUpTo += chunk;
      }
    },
    async close() {
      closed = true;
      await worker?.terminate();
    },
  };
}
