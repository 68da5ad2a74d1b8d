/**
 * Collects terminators and runs them once, newest first: the last thing
 * started is the first thing stopped.
 */
export type Shutdown = {
  add(callback: () => unknown | Promise<unknown>): void;
  /** Aborted when shutdown starts; long-running loops watch it. */
  signal: AbortSignal;
  isKilled(): boolean;
  kill(): Promise<void>;
};

export function createShutdown(): Shutdown {
  const callbacks: Array<() => unknown | Promise<unknown>> = [];
  const controller = new AbortController();
  let killing: Promise<void> | undefined;

  return {
    add(callback) {
      callbacks.push(callback);
    },
    signal: controller.signal,
    isKilled: () => controller.signal.aborted,
    kill() {
      killing ??= (async () => {
        controller.abort();
        for (const callback of callbacks.reverse()) {
          try {
            await callback();
          } catch {
            // A failing terminator must not stop the others.
          }
        }
      })();
      return killing;
    },
  };
}
