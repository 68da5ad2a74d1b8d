/**
 * Process plumbing shared by the long-running commands: the only code that
 * touches signals and process.exit.
 */
import { ConfigError, errorMessage } from "../internal/errors.ts";

/** Prints a config error ("key: problem" lines) and exits 1. */
export function exitOnError(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`0xbtcpay: ${error.message}\n`);
  } else {
    process.stderr.write(`0xbtcpay: ${errorMessage(error)}\n`);
  }
  process.exit(1);
}

/**
 * How long a stop may take before the process exits anyway, in ms: under the
 * 10 s that `docker stop` and Kubernetes give before SIGKILL. A forced exit
 * loses nothing committed (every state change commits with its cause); a
 * request still in flight is not answered, and the shop retries it.
 */
export const STOP_TIMEOUT_MS = 9_000;

/**
 * Stops cleanly on SIGINT/SIGTERM: runs `stop`, then exits 0. A second
 * signal forces the exit (code 1), and so does a stop that takes longer
 * than {@link STOP_TIMEOUT_MS}.
 */
export function onSignals(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`0xbtcpay: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    setTimeout(() => {
      process.stderr.write(
        `0xbtcpay: the stop took longer than ${STOP_TIMEOUT_MS / 1000} s, exiting now\n`,
      );
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    stop(signal).then(
      () => process.exit(0),
      (error) => exitOnError(error),
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}
