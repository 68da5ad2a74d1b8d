/**
 * A value carried along an async call chain (AsyncLocalStorage), switched
 * off whenever no chain carries one. On Node 20, an AsyncLocalStorage in
 * use installs promise hooks that every promise of the process pays for
 * (measured: status.json throughput 0.77 → 0.67 of the bare server); the
 * transactions that need a context are a small part of the time, so the
 * hooks are on only while one runs.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export type TaskContext<T> = {
  /** The value of the chain the caller is in, if any. */
  get(): T | undefined;
  /** Runs `fn` with `value` as the chain's value (for everything it awaits). */
  run<R>(value: T, fn: () => Promise<R>): Promise<R>;
  /** Runs `fn` outside any chain's value (work that outlives the caller's). */
  exit<R>(fn: () => R): R;
};

export function createTaskContext<T>(): TaskContext<T> {
  const storage = new AsyncLocalStorage<T>();
  /** Chains running now: at 0 the hooks are switched off. */
  let running = 0;
  return {
    get: () => storage.getStore(),
    async run(value, fn) {
      running++;
      try {
        return await storage.run(value, fn);
      } finally {
        // NOTE: disable() exits every context of this instance: only when
        // none is running, so no chain loses its value.
        if (--running === 0) storage.disable();
      }
    },
    exit: (fn) => storage.exit(fn),
  };
}
