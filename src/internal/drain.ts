/**
 * Graceful close of a node:http server: stop accepting connections, let the
 * requests in flight finish, close keep-alive connections as they go idle,
 * and cut whatever is left after a bound.
 */
import type { Server, ServerResponse } from "node:http";

export type Drainable = {
  /** Requests in flight now. */
  inFlight(): number;
  /**
   * Stops accepting, waits for the requests in flight (each answered with
   * `Connection: close`), then closes; after `timeoutMs` the connections
   * still open are cut. Resolves with how many requests were cut.
   */
  close(timeoutMs: number): Promise<{ cut: number }>;
};

/** Tracks the requests of `server` (call before it serves any) so that it can be drained. */
export function drainable(server: Server): Drainable {
  const active = new Set<ServerResponse>();
  let stopping = false;

  /** After a response, its keep-alive connection is idle: close it once Node has marked it so. */
  const closeIdleSoon = () => setImmediate(() => server.closeIdleConnections());

  server.on("request", (_req, res: ServerResponse) => {
    active.add(res);
    // NOTE: a request that arrives on a kept-alive connection during the
    // stop is still served (the client sent it before it could know), but
    // its connection closes after the answer.
    if (stopping && !res.headersSent) res.setHeader("connection", "close");
    res.once("close", () => {
      active.delete(res);
      if (stopping) closeIdleSoon();
    });
  });

  return {
    inFlight: () => active.size,
    close(timeoutMs) {
      stopping = true;
      for (const res of active) if (!res.headersSent) res.setHeader("connection", "close");
      return new Promise((resolve) => {
        let cut = 0;
        // NOTE: real time, not the injected clock: this bounds how long the
        // process takes to stop, and a test's manual clock would never end it.
        const timer = setTimeout(() => {
          cut = active.size;
          server.closeAllConnections();
        }, timeoutMs);
        server.close(() => {
          clearTimeout(timer);
          resolve({ cut });
        });
        server.closeIdleConnections();
      });
    },
  };
}
