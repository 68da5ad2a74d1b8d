/**
 * The daemon as the bench runs it: its own process, started through
 * `startDaemon` exactly as `0xbtcpay serve` does, logging JSON lines to
 * stderr (the bench points stderr at a file). The config comes in
 * $BENCH_DAEMON_CONFIG; the URLs go back over the IPC channel.
 */
import { parseConfig } from "../../src/config/index.ts";
import { startDaemon } from "../../src/daemon.ts";
import { errorMessage } from "../../src/internal/errors.ts";
import { createLogger } from "../../src/internal/logger.ts";

export type DaemonChildMessage =
  | {
      type: "ready";
      privateUrl: string;
      publicUrl: string;
      opsUrl: string | undefined;
      startingAt: number;
    }
  | { type: "error"; message: string };

function send(message: DaemonChildMessage): void {
  process.send?.(message);
}

const config = parseConfig(JSON.parse(process.env.BENCH_DAEMON_CONFIG ?? "null"));
const logger = createLogger({ level: config.log.level });
const startingAt = Date.now();
try {
  const daemon = await startDaemon({ config, logger });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await daemon.stop();
    // process.exit (not a signal) so that --cpu-prof writes its profile.
    process.exit(0);
  };
  process.on("message", (message: { type?: string }) => {
    if (message.type === "stop") void stop();
  });
  process.on("disconnect", () => void stop());
  process.on("SIGTERM", () => void stop());
  send({
    type: "ready",
    privateUrl: daemon.privateUrl,
    publicUrl: daemon.publicUrl,
    opsUrl: daemon.opsUrl,
    startingAt,
  });
} catch (error) {
  send({ type: "error", message: errorMessage(error) });
  process.exit(1);
}
