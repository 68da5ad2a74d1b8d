/**
 * Thousands of SSE clients in their own process (the bench process keeps
 * its descriptors): each is a raw TCP socket from one of several loopback
 * source addresses that writes `GET /<id>/events` and counts the messages
 * of the stream it reads, recording when each arrived. Much lighter than
 * fetch or node:http per client. Driven over the IPC channel: the parent
 * sends requests with a sequence number, the child answers each.
 */
import { connect, type Socket } from "node:net";

export type SseClientsRequest =
  | {
      type: "open";
      /** The public port's base URL (http://127.0.0.1:PORT). */
      url: string;
      /** One connection per id, in this order. */
      ids: string[];
      /** The index of the first of them among all the connections (a second call adds more). */
      first: number;
      /** Loopback source addresses, used in turn. */
      sources: string[];
      /** Connections being opened at once. */
      concurrency: number;
    }
  | { type: "state" }
  | { type: "close" };

export type OpenResult = { opened: number; failed: number; firstError: string | null; ms: number };

export type StateResult = {
  /** Connections still open. */
  open: number;
  /** Messages (`data:` events) each connection received, in the order of `ids`. */
  messages: number[];
  /** When each connection's second message arrived (performance.timeOrigin + now(), ms); null: not yet. */
  secondAt: Array<number | null>;
};

export type SseClientsMessage =
  | { type: "ready" }
  | { type: "answer"; seq: number; result: unknown }
  | { type: "failed"; seq: number; message: string };

type Client = {
  socket: Socket;
  /** The response head has been read (and it said 200). */
  head: boolean;
  /** The end of the text read so far: a `\ndata: ` split between two reads is still found. */
  tail: string;
  messages: number;
  secondAt: number | null;
  open: boolean;
};

const MARK = "\ndata: ";
const clients: Client[] = [];
const now = () => performance.timeOrigin + performance.now();

/** Opens one stream; resolves once its first message (the full status) has arrived. */
function openOne(url: URL, id: string, source: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      localAddress: source,
    });
    const client: Client = {
      socket,
      head: false,
      tail: "",
      messages: 0,
      secondAt: null,
      open: true,
    };
    let settled = false;
    const fail = (error: Error) => {
      client.open = false;
      if (!settled) {
        settled = true;
        socket.destroy();
        reject(error);
      }
    };
    socket.setEncoding("latin1");
    socket.on("connect", () => {
      socket.write(
        `GET /${id}/events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: string) => {
      const at = now();
      let text = client.tail + chunk;
      if (!client.head) {
        const end = text.indexOf("\r\n\r\n");
        if (end === -1) {
          client.tail = text;
          return;
        }
        if (!text.startsWith("HTTP/1.1 200 ")) {
          return fail(new Error(`answered ${text.slice(0, text.indexOf("\r\n"))}`));
        }
        client.head = true;
        text = text.slice(end);
      }
      for (let i = text.indexOf(MARK); i !== -1; i = text.indexOf(MARK, i + MARK.length)) {
        client.messages++;
        if (client.messages === 2) client.secondAt = at;
      }
      client.tail = text.slice(-(MARK.length - 1));
      if (!settled && client.messages > 0) {
        settled = true;
        resolve(client);
      }
    });
    socket.on("error", fail);
    socket.on("close", () => {
      client.open = false;
      if (!settled) fail(new Error("closed before the first message"));
    });
  });
}

async function open(request: Extract<SseClientsRequest, { type: "open" }>): Promise<OpenResult> {
  const url = new URL(request.url);
  const started = now();
  let next = 0;
  let failed = 0;
  let firstError: string | null = null;
  const worker = async () => {
    while (next < request.ids.length) {
      const index = next++;
      const slot = request.first + index;
      const source = request.sources[slot % request.sources.length] as string;
      try {
        clients[slot] = await openOne(url, request.ids[index] as string, source);
      } catch (error) {
        failed++;
        firstError ??= String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: request.concurrency }, worker));
  return { opened: request.ids.length - failed, failed, firstError, ms: now() - started };
}

function state(): StateResult {
  return {
    open: clients.filter((client) => client?.open).length,
    messages: Array.from(clients, (client) => client?.messages ?? 0),
    secondAt: Array.from(clients, (client) => client?.secondAt ?? null),
  };
}

function send(message: SseClientsMessage): void {
  process.send?.(message);
}

process.on("message", (message: { type?: string; seq?: number; request?: SseClientsRequest }) => {
  if (message.type === "stop") process.exit(0);
  const { seq, request } = message;
  if (seq === undefined || !request) return;
  const answer = async (): Promise<unknown> => {
    if (request.type === "open") return open(request);
    if (request.type === "state") return state();
    for (const client of clients) client?.socket.destroy();
    return null;
  };
  answer().then(
    (result) => send({ type: "answer", seq, result }),
    (error) => send({ type: "failed", seq, message: String(error) }),
  );
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
