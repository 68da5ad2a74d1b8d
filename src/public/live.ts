/**
 * Live status for checkout pages: Server-Sent Events at `GET /<id>/events`.
 * The first message is the full status (status.json's body), then one per
 * change, pushed from the payment logic's change feed right after the commit
 * that made it (no polling). Each message's `id:` is a digest of its body:
 * a client that reconnects with `Last-Event-ID` gets the current status only
 * if it differs from the last one it had (no duplicate, no gap). A heartbeat
 * comment keeps proxies from closing idle streams; the stream ends after a
 * final status (paid, expired, cancelled).
 */
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Logger } from "../internal/logger.ts";
import type { Payments } from "../payments/index.ts";

/** Longest silence on a stream: proxies commonly cut idle responses at 30–60 s. */
export const HEARTBEAT_MS = 20_000;
/** The reconnection delay the browser is told to use. */
export const RETRY_MS = 3_000;

const FINAL = new Set(["paid", "expired", "cancelled"]);

export type LiveStreams = {
  /** Serves `GET /<id>/events`; false: no such payment (the caller answers 404). */
  open(res: ServerResponse, id: string, lastEventId: string | undefined): Promise<boolean>;
  /** Streams open now. */
  count(): number;
  /** Ends every stream and stops listening (shutdown). */
  close(): void;
};

type Stream = { res: ServerResponse; lastId: string | undefined };

/** What a stream needs to know of a status body besides its bytes. */
type Body = { text: string; id: string; final: boolean; headBound: boolean };

/** A status body with its event id, whether it is final and whether a new head alone can change it. */
function bodyOf(text: string): Body {
  const view = JSON.parse(text) as { status: string; confirmations: number; transfers: unknown[] };
  return {
    text,
    id: eventIdOf(text),
    final: FINAL.has(view.status),
    // NOTE: only confirmations move with the head, and a payment without a
    // transfer has none: its status changes only in a commit that touches it.
    headBound: view.confirmations > 0 || view.transfers.length > 0,
  };
}

/** The event id of a status body: a short digest, equal for equal bodies. */
export function eventIdOf(body: string): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 16);
}

export function createLiveStreams({
  payments,
  logger,
  heartbeatMs = HEARTBEAT_MS,
  retryMs = RETRY_MS,
}: {
  payments: Pick<Payments, "statusJson" | "statusJsonMany" | "onChange">;
  logger: Logger;
  heartbeatMs?: number;
  retryMs?: number;
}): LiveStreams {
  const log = logger.child({ module: "public" });
  const byPayment = new Map<string, Set<Stream>>();
  /** Payments with open streams whose status a new head alone changes (see bodyOf). */
  const headBound = new Set<string>();
  let open = 0;

  function remove(id: string, stream: Stream) {
    const set = byPayment.get(id);
    if (!set?.delete(stream)) return;
    open--;
    if (set.size === 0) {
      byPayment.delete(id);
      headBound.delete(id);
    }
  }

  /** Sends `body` unless the stream already has it; ends the stream after a final status. */
  function send(id: string, stream: Stream, body: Body): void {
    if (stream.lastId !== body.id) {
      stream.lastId = body.id;
      stream.res.write(`id: ${body.id}\ndata: ${body.text}\n\n`);
      // NOTE: node:http corks the socket on a write until the next tick, and
      // the code that committed the change may go on working before then (the
      // watcher applies the new head right after a batch): send it now.
      stream.res.socket?.uncork();
    }
    if (body.final) {
      remove(id, stream);
      stream.res.end();
    }
  }

  /** Sends payment `id`'s current status (`text`) to its streams; notes whether a new head can change it. */
  function push(id: string, text: string | undefined): void {
    const set = byPayment.get(id);
    if (!set) return;
    const body = text === undefined ? undefined : bodyOf(text);
    if (body?.headBound) headBound.add(id);
    else headBound.delete(id);
    for (const stream of [...set]) {
      if (body === undefined) {
        remove(id, stream);
        stream.res.end();
      } else {
        send(id, stream, body);
      }
    }
  }

  // NOTE: changes are pushed one after another, in commit order, even when
  // reading the bodies takes a round trip: a stream never goes back in time.
  let pushing: Promise<void> = Promise.resolve();
  const unsubscribe = payments.onChange(({ ids, head }) => {
    const changed = new Set(ids);
    // A new head moves the confirmations of the payments that have transfers.
    if (head) for (const id of headBound) changed.add(id);
    pushing = pushing
      .then(async () => {
        const watched = [...changed].filter((id) => byPayment.has(id));
        if (watched.length === 0) return;
        // NOTE: one batch of queries for all of them: a block can pay a thousand at once.
        const bodies = await payments.statusJsonMany(watched);
        for (const id of watched) push(id, bodies.get(id));
      })
      .catch((error: unknown) =>
        log.error({ err: error }, "live streams: reading changed payments failed"),
      );
  });

  const heartbeat = setInterval(() => {
    for (const set of byPayment.values()) for (const stream of set) stream.res.write(": \n\n");
  }, heartbeatMs);
  heartbeat.unref();

  return {
    async open(res, id, lastEventId) {
      const text = await payments.statusJson(id);
      if (text === undefined) return false;
      // The client left while its status was read: nothing to open.
      if (res.destroyed) return true;
      const body = bodyOf(text);
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        connection: "keep-alive",
        // NOTE: nginx buffers responses unless told not to; a buffered stream is not live.
        "x-accel-buffering": "no",
        "access-control-allow-origin": "*",
        "x-content-type-options": "nosniff",
      });
      res.write(`retry: ${retryMs}\n\n`);
      const stream: Stream = { res, lastId: lastEventId };
      let set = byPayment.get(id);
      if (!set) {
        set = new Set();
        byPayment.set(id, set);
      }
      set.add(stream);
      open++;
      if (body.headBound) headBound.add(id);
      res.on("close", () => remove(id, stream));
      res.on("error", (error) => {
        log.debug({ payment_id: id, err: error }, "live stream failed");
        remove(id, stream);
      });
      send(id, stream, body);
      return true;
    },
    count: () => open,
    close() {
      clearInterval(heartbeat);
      unsubscribe();
      for (const [id, set] of byPayment) {
        for (const stream of [...set]) {
          remove(id, stream);
          stream.res.end();
        }
      }
    },
  };
}
