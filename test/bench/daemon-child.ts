/**
 * The daemon as the bench runs it: its own process, started through
 * `startDaemon` exactly as `0xbtcpay serve` does, logging JSON lines to
 * stderr (the bench points stderr at a file). The config comes in
 * $BENCH_DAEMON_CONFIG; the URLs go back over the IPC channel, and so do
 * the public port's connection counts when asked.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parseConfig } from "../../src/config/index.ts";
import { startDaemon } from "../../src/daemon.ts";
import { errorMessage } from "../../src/internal/errors.ts";
import { createLogger } from "../../src/internal/logger.ts";

/** The process's memory after a full garbage collection, in bytes (process.memoryUsage()). */
export type DaemonMemory = { rss: number; heapUsed: number; external: number };

export type DaemonChildMessage =
  | {
      type: "ready";
      privateUrl: string;
      publicUrl: string;
      opsUrl: string | undefined;
      startingAt: number;
    }
  | { type: "error"; message: string }
  | { type: "connections"; connections: PublicConnections }
  | { type: "memory"; memory: DaemonMemory };

/** The daemon's own count of its public connections (`connections` message: these addresses). */
export type PublicConnections = {
  open: number;
  /** The most open connections from one of the addresses asked about. */
  maxFromOne: number;
  refused: { total: number; perIp: number };
};

function send(message: DaemonChildMessage): void {
  process.send?.(message);
}

/** Memory after a full collection, so that garbage not yet collected does not count. */
function collectedMemory(): DaemonMemory {
  // NOTE: the bench's way to reach gc() without starting the daemon with --expose-gc.
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
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
  process.on("message", (message: { type?: string; addresses?: string[] }) => {
    if (message.type === "stop") void stop();
    if (message.type === "connections") {
      const counts = daemon.publicConnections;
      send({
        type: "connections",
        connections: {
          open: counts.open(),
          maxFromOne: Math.max(0, ...(message.addresses ?? []).map((a) => counts.openFrom(a))),
          refused: counts.refused(),
        },
      });
    }
    if (message.type === "memory") send({ type: "memory", memory: collectedMemory() });
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
