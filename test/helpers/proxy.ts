/**
 * A small HTTP proxy in front of anvil that misbehaves on demand: the bad
 * provider of the tests. Listens on 127.0.0.1 only.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type ProxyMode = "pass" | "http500" | "drop";

export type RpcCall = { id: unknown; method: string; params: unknown[] };

/** What a hook may do with one call: answer for anvil, drop the socket, or let it pass (undefined). */
export type HookResult =
  | { status?: number; headers?: Record<string, string>; body: unknown }
  | { rewrite: (upstreamResult: unknown) => unknown }
  | "drop"
  | undefined;

export type Hook = (call: RpcCall) => HookResult | Promise<HookResult>;

export async function startRpcProxy(target: string) {
  let mode: ProxyMode = "pass";
  let hook: Hook | undefined;
  const requests: string[] = [];
  const calls: RpcCall[] = [];

  async function forward(body: string): Promise<{ status: number; text: string }> {
    const upstream = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: upstream.status, text: await upstream.text() };
  }

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    requests.push(body);
    if (mode === "drop") {
      req.socket.destroy();
      return;
    }
    if (mode === "http500") {
      res.writeHead(500, { "content-type": "text/plain" }).end("upstream exploded");
      return;
    }
    try {
      const call = JSON.parse(body) as RpcCall;
      if (!Array.isArray(call)) {
        calls.push(call);
        const result = hook ? await hook(call) : undefined;
        if (result === "drop") {
          req.socket.destroy();
          return;
        }
        if (result && "body" in result) {
          const raw = typeof result.body === "string";
          res
            .writeHead(result.status ?? 200, {
              "content-type": raw ? "text/plain" : "application/json",
              ...result.headers,
            })
            .end(raw ? result.body : JSON.stringify(result.body));
          return;
        }
        if (result && "rewrite" in result) {
          const upstream = await forward(body);
          const parsed = JSON.parse(upstream.text) as { result?: unknown };
          parsed.result = result.rewrite(parsed.result);
          res
            .writeHead(upstream.status, { "content-type": "application/json" })
            .end(JSON.stringify(parsed));
          return;
        }
      }
      const upstream = await forward(body);
      res.writeHead(upstream.status, { "content-type": "application/json" }).end(upstream.text);
    } catch {
      if (!res.headersSent) res.writeHead(502).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    calls,
    setMode(next: ProxyMode) {
      mode = next;
    },
    setHook(next: Hook | undefined) {
      hook = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A JSON-RPC error body as a provider sends it. */
export function rpcError(call: RpcCall, code: number, message: string) {
  return { body: { jsonrpc: "2.0", id: call.id, error: { code, message } } };
}
