/**
 * Deposit addresses derived ahead of use in a worker thread, so that
 * start_payment does not spend its time on elliptic-curve arithmetic.
 *
 * The pool is only a cache keyed by derivation index: the index itself is
 * still allocated from the database counter in the transaction that inserts
 * the payment, so nothing about it needs to be persisted, and an index the
 * pool has not reached yet is simply derived on the spot.
 *
 * The worker (an extra V8 isolate: tens of MB) starts with the first
 * payment and stops after `idleMs` without one, so a daemon that mostly
 * serves status pages does not carry it.
 */
import { Worker } from "node:worker_threads";
import { workerModule } from "../internal/background.ts";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { AddressDeriver } from "./index.ts";

export type AddressPool = AddressDeriver & {
  /** Makes sure addresses from `nextIndex` on are being derived ahead (starts the worker). */
  prefetch(nextIndex: number): void;
  close(): Promise<void>;
};

/** Indexes the worker derives in one batch (one field inversion for all). */
export const POOL_CHUNK = 512;

export function createAddressPool({
  xpub,
  fallback,
  logger,
  ahead = 4096,
  chunk = POOL_CHUNK,
  idleMs = 60_000,
}: {
  xpub: string;
  /** Derives on the spot what the pool does not have (same addresses). */
  fallback: AddressDeriver;
  logger: Logger;
  /** How many addresses to keep derived ahead of the next index. */
  ahead?: number;
  chunk?: number;
  /** The worker stops after this long without a prefetch. */
  idleMs?: number;
}): AddressPool {
  const log = logger.child({ module: "addresses" });
  const ready = new Map<number, string>();
  /** Every index below this one has been asked of the worker. */
  let requestedUpTo = -1;
  let closed = false;
  let failed = false;
  let worker: Worker | undefined;
  let lastUse = 0;
  let idleTimer: NodeJS.Timeout | undefined;

  function stop() {
    void worker?.terminate();
    worker = undefined;
    ready.clear();
    requestedUpTo = -1;
    if (idleTimer) clearInterval(idleTimer);
    idleTimer = undefined;
  }

  function start(): Worker | undefined {
    if (worker || closed || failed) return worker;
    try {
      const started = new Worker(workerModule("pool-worker", import.meta.url), {
        workerData: { xpub },
      });
      type Chunk = { from: number; addresses: (string | null)[] };
      started.on("message", ({ from, addresses }: Chunk) => {
        if (worker !== started) return;
        // null: an index the worker could not derive; derive() falls back for it.
        addresses.forEach((address, i) => {
          if (address !== null) ready.set(from + i, address);
        });
      });
      started.on("error", (error) => {
        log.warn({ err: errorMessage(error) }, "address pool worker failed: deriving on the spot");
        failed = true;
        if (worker === started) stop();
      });
      started.unref();
      worker = started;
      idleTimer = setInterval(
        () => {
          if (Date.now() - lastUse > idleMs) stop();
        },
        Math.max(1000, idleMs / 2),
      );
      idleTimer.unref();
    } catch (error) {
      failed = true;
      log.warn({ err: errorMessage(error) }, "address pool unavailable: deriving on the spot");
    }
    return worker;
  }

  return {
    derive(index) {
      const address = ready.get(index);
      if (address === undefined) return fallback.derive(index);
      ready.delete(index);
      return address;
    },
    prefetch(nextIndex) {
      lastUse = Date.now();
      const active = start();
      if (!active) return;
      if (requestedUpTo < nextIndex) requestedUpTo = nextIndex;
      // Indexes below nextIndex are used: drop any leftovers.
      if (ready.size > ahead * 2) {
        for (const index of ready.keys()) if (index < nextIndex) ready.delete(index);
      }
      while (requestedUpTo < nextIndex + ahead) {
        active.postMessage({ from: requestedUpTo, count: chunk });
        requestedUpTo += chunk;
      }
    },
    async close() {
      closed = true;
      const current = worker;
      stop();
      await current?.terminate();
    },
  };
}
