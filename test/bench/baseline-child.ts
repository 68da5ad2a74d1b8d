/**
 * The baselines, in the same process layout as the daemon (a child process
 * started the same way): a bare node:http server with no framework.
 *
 * - "status": answers every request with the exact headers and body of a
 *   real response (status.json's, or a checkout page's): the same bytes on
 *   the wire, no lookup.
 * - "insert": for every POST, parses the JSON body and commits one payment
 *   row with the daemon's real schema and durability (WAL, synchronous=FULL),
 *   then answers with a body shaped like start_payment's. No derivation, no
 *   validation: the floor of "one durable commit per request".
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { openDatabase } from "../../src/store/sqlite/index.ts";

export type BaselineSpec =
  | {
      mode: "status";
      headers: Record<string, string>;
      body: string;
      /** How `body` is written: "base64" for binary bodies (a gzipped page); default utf8. */
      bodyEncoding?: "utf8" | "base64";
    }
  | { mode: "insert"; dbPath: string };

export type BaselineChildMessage = { type: "ready"; url: string };

const spec = JSON.parse(process.env.BENCH_BASELINE ?? "null") as BaselineSpec;

function statusHandler(s: Extract<BaselineSpec, { mode: "status" }>) {
  const body = Buffer.from(s.body, s.bodyEncoding ?? "utf8");
  const headers = { ...s.headers, "content-length": String(body.length) };
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, headers).end(body);
  };
}

function insertHandler(s: Extract<BaselineSpec, { mode: "insert" }>) {
  const db = openDatabase({ path: s.dbPath });
  const nextIndex = db
    .prepare(
      "UPDATE counters SET value = value + 1 WHERE name = 'derivation_index' RETURNING value - 1 AS value",
    )
    .pluck();
  const insert = db.prepare(`INSERT INTO payments
    (id, amount, derivation_index, address, data, postback_url, created_at, expires_at)
    VALUES (@id, @amount, @derivation_index, @address, @data, @postback_url, @created_at, @expires_at)`);
  const create = db.transaction((params: { amount: string; data: string; postbackUrl: string }) => {
    const now = Date.now();
    const row = {
      id: randomBytes(8).toString("hex"),
      amount: params.amount,
      derivation_index: nextIndex.get() as number,
      address: `0x${randomBytes(20).toString("hex")}`,
      data: params.data,
      postback_url: params.postbackUrl,
      created_at: now,
      expires_at: now + 86_400_000,
    };
    insert.run(row);
    return row;
  });
  return (req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () => {
      const request = JSON.parse(text) as {
        id: unknown;
        params: { amount: string; data?: unknown; postback_url?: string };
      };
      const row = create({
        amount: request.params.amount,
        data: JSON.stringify(request.params.data ?? null),
        postbackUrl: request.params.postback_url ?? "",
      });
      const body = JSON.stringify({
        jsonrpc: "2.0",
        result: {
          id: row.id,
          amount: request.params.amount,
          address: row.address,
          expires_at: Math.floor(row.expires_at / 1000),
        },
        id: request.id,
      });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    });
  };
}

const server = createServer(spec.mode === "status" ? statusHandler(spec) : insertHandler(spec));
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: "ready", url: `http://127.0.0.1:${port}` } satisfies BaselineChildMessage);
});
const stop = () => server.close(() => process.exit(0));
process.on("message", (message: { type?: string }) => {
  if (message.type === "stop") {
    server.closeAllConnections();
    stop();
  }
});
process.on("disconnect", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
