/** Time, injectable so tests control it. */
export type Clock = {
  /** Milliseconds since the UNIX epoch. */
  now(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
};

export function createClock(): Clock {
  return {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolve();
        }
        signal?.addEventListener("abort", done, { once: true });
      }),
  };
}

/** UNIX seconds of a millisecond timestamp. */
export function toUnixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}
