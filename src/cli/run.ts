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
 * Stops cleanly on SIGINT/SIGTERM; a second signal forces the exit.
 * Resolves the process exit code once `stop` has finished.
 */
export function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`0xbtcpay: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error) => exitOnError(error),
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}
