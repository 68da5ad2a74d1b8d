/**
 * Optional websocket `newHeads` subscription. It only wakes the poller early:
 * polling stays the source of truth, so a dropped socket misses nothing, it
 * only makes detection wait for the next poll until it reconnects.
 */
import WebSocket from "ws";
import type { Clock } from "../internal/clock.ts";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";

export type HeadSubscription = {
  /** Runs until `signal` aborts, reconnecting with backoff. */
  run(signal: AbortSignal): Promise<void>;
};

export function createHeadSubscription({
  url,
  onHead,
  clock,
  logger,
  maxBackoffMs = 30_000,
}: {
  url: string;
  onHead: () => void;
  clock: Clock;
  logger: Logger;
  maxBackoffMs?: number;
}): HeadSubscription {
  const log = logger.child({ module: "chain.ws" });

  /** One connection's life; resolves when it closes. Returns whether it got a head. */
  function connectOnce(signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let gotHead = false;
      const socket = new WebSocket(url, { handshakeTimeout: 10_000 });
      const onAbort = () => socket.terminate();
      signal.addEventListener("abort", onAbort, { once: true });
      socket.on("open", () => {
        socket.send(
          JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_subscribe", params: ["newHeads"] }),
        );
        log.info("websocket connected: newHeads wakes the poller");
      });
      socket.on("message", (data) => {
        let message: { method?: string };
        try {
          message = JSON.parse(String(data));
        } catch {
          return;
        }
        if (message.method === "eth_subscription") {
          gotHead = true;
          onHead();
        }
      });
      socket.on("error", (error) => log.warn({ err: errorMessage(error) }, "websocket error"));
      socket.on("close", () => {
        signal.removeEventListener("abort", onAbort);
        resolve(gotHead);
      });
    });
  }

  return {
    async run(signal) {
      let failures = 0;
      while (!signal.aborted) {
        const gotHead = await connectOnce(signal);
        if (signal.aborted) return;
        failures = gotHead ? 1 : failures + 1;
        const delay = Math.min(maxBackoffMs, 500 * 2 ** Math.min(failures, 10));
        log.warn({ retry_in_ms: delay }, "websocket closed; polling continues, reconnecting");
        await clock.sleep(delay, signal);
      }
    },
  };
}
