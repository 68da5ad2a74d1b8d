/**
 * A text/event-stream reader over a real socket (node:http, no agent), for
 * tests and the bench: it keeps the raw text and splits it into the blocks
 * the server wrote (an event, a `retry:` line, a comment), parsed as the
 * EventSource spec reads fields.
 */
import { type IncomingHttpHeaders, request } from "node:http";

/** One block of the stream: the fields it carried (a comment has only `comment`). */
export type SseBlock = { id?: string; data?: string; retry?: number; comment?: string };

export type EventStream = {
  status: number;
  headers: IncomingHttpHeaders;
  /** Everything received so far, as text. */
  text(): string;
  /**
   * The next block not taken yet; waits for it. Rejects if the stream ends
   * first, or after `timeoutMs` (a guard against a hang, not a measurement).
   */
  next(timeoutMs?: number): Promise<SseBlock>;
  /** The next block that carries `data` (skipping `retry:` lines and comments). */
  nextMessage(timeoutMs?: number): Promise<SseBlock & { data: string }>;
  /** Blocks received and not taken yet. */
  pending(): SseBlock[];
  /** "end": the response ended cleanly; "aborted": the connection was cut before its end. */
  ended: Promise<"end" | "aborted">;
  close(): void;
};

/** Parses one block (the text between two blank lines). */
export function parseBlock(text: string): SseBlock {
  const block: SseBlock = {};
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "") block.comment = value;
    else if (field === "id") block.id = value;
    else if (field === "data")
      block.data = block.data === undefined ? value : `${block.data}\n${value}`;
    else if (field === "retry") block.retry = Number(value);
  }
  return block;
}

/** GETs `url` and reads it as an event stream; resolves once the response head arrives. */
export function openEventStream(
  url: string,
  { lastEventId, from }: { lastEventId?: string; from?: string } = {},
): Promise<EventStream> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: target.hostname,
      port: target.port,
      path: `${target.pathname}${target.search}`,
      agent: false,
      headers: {
        accept: "text/event-stream",
        ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
      },
      ...(from ? { localAddress: from } : {}),
    });
    req.on("error", reject);
    req.end();
    req.on("response", (res) => {
      res.setEncoding("utf8");
      let raw = "";
      let buffer = "";
      const queue: SseBlock[] = [];
      type Waiter = { resolve(block: SseBlock): void; reject(error: Error): void };
      const waiters: Waiter[] = [];
      let finished: "end" | "aborted" | undefined;
      let settle: (how: "end" | "aborted") => void = () => {};
      const ended = new Promise<"end" | "aborted">((done) => {
        settle = (how) => {
          if (finished) return;
          finished = how;
          for (const waiter of waiters.splice(0)) {
            waiter.reject(new Error(`the stream ended (${how}) before the next block`));
          }
          done(how);
        };
      });
      res.on("data", (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const block = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          const waiter = waiters.shift();
          if (waiter) waiter.resolve(block);
          else queue.push(block);
        }
      });
      res.on("end", () => settle("end"));
      res.on("close", () => settle(res.complete ? "end" : "aborted"));
      res.on("error", () => settle("aborted"));
      const next = (timeoutMs = 15_000) =>
        new Promise<SseBlock>((resolveBlock, rejectBlock) => {
          const block = queue.shift();
          if (block) return resolveBlock(block);
          if (finished) {
            return rejectBlock(new Error(`the stream ended (${finished}) before the next block`));
          }
          const waiter: Waiter = {
            resolve(value) {
              clearTimeout(timer);
              resolveBlock(value);
            },
            reject(error) {
              clearTimeout(timer);
              rejectBlock(error);
            },
          };
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            rejectBlock(new Error(`no block on ${url} within ${timeoutMs} ms`));
          }, timeoutMs);
          waiters.push(waiter);
        });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: () => raw,
        next,
        async nextMessage(timeoutMs) {
          for (;;) {
            const block = await next(timeoutMs);
            if (block.data !== undefined) return block as SseBlock & { data: string };
          }
        },
        pending: () => [...queue],
        ended,
        close: () => req.destroy(),
      });
    });
  });
}
