/**
 * The private port's wire format and allowlist, over real sockets on
 * 127.0.0.1 to the listener the daemon serves.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { listenNode, request as send, setupApps } from "../helpers/private-app.ts";

const request = (params: unknown, extra: Record<string, unknown> = {}) => ({
  jsonrpc: "2.0",
  id: 111,
  method: "start_payment",
  params,
  ...extra,
});

describe("start_payment wire compatibility", () => {
  test("a valid request returns id, amount and address, echoing the request id", async () => {
    const { post, payments } = await setupApps();
    const response = await post(
      request({
        amount: "222.333",
        data: { order_id: "444" },
        postback_url: "https://shop.example/payment_complete",
      }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("content-type")).toBe("application/json");
    const body = (await response.json()) as {
      jsonrpc: string;
      id: number;
      result: Record<string, unknown>;
    };
    expect(Object.keys(body)).toEqual(["jsonrpc", "result", "id"]);
    expect(body.jsonrpc).toBe("2.0");
    expect(body.id).toBe(111);
    expect(body.result.id).toMatch(/^[0-9a-f]{16}$/);
    expect(body.result.amount).toBe("222.333");
    expect(body.result.address).toBe(createAddressDeriver({ xpub: DEV_XPUB }).derive(0));
    const row = await payments.get(body.result.id as string);
    expect(row?.amount).toBe("22233300000");
    expect(row?.data).toBe('{"order_id":"444"}');
    expect(row?.postback_url).toBe("https://shop.example/payment_complete");
  });

  test("string ids are echoed", async () => {
    const { post } = await setupApps();
    const body = (await (await post(request({ amount: "1" }, { id: "abc" }))).json()) as {
      id: unknown;
    };
    expect(body.id).toBe("abc");
  });

  test("each payment gets a fresh address and derivation index", async () => {
    const { post, payments } = await setupApps();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = (await (await post(request({ amount: "1" }))).json()) as {
        result: { id: string };
      };
      ids.push(body.result.id);
    }
    const rows = await Promise.all(ids.map((id) => payments.get(id)));
    expect(rows.map((r) => r?.derivation_index)).toEqual([0, 1, 2, 3, 4]);
    expect(new Set(rows.map((r) => r?.address)).size).toBe(5);
  });

  test("data is stored as the exact JSON text sent (big numbers, order, spacing)", async () => {
    const { post, payments } = await setupApps();
    const raw = `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"data": {"b":1, "a":12345678901234567890123, "s":"\\u00e9"} ,"amount":"1"}}`;
    const body = (await (await post(raw)).json()) as { result: { id: string } };
    expect((await payments.get(body.result.id))?.data).toBe(
      '{"b":1, "a":12345678901234567890123, "s":"\\u00e9"}',
    );
  });

  test("absent data is stored as null; explicit null data as the text null", async () => {
    const { post, payments } = await setupApps();
    const a = (await (await post(request({ amount: "1" }))).json()) as { result: { id: string } };
    const b = (await (await post(request({ amount: "1", data: null }))).json()) as {
      result: { id: string };
    };
    expect((await payments.get(a.result.id))?.data).toBeNull();
    expect((await payments.get(b.result.id))?.data).toBe("null");
  });

  const errorCases: Array<[string, unknown, number, string, unknown]> = [
    ["a body that is not JSON", "{not json", -32700, "Parse error", null],
    ["an empty body", "", -32700, "Parse error", null],
    [
      "a missing jsonrpc",
      { id: 5, method: "start_payment", params: { amount: "1" } },
      -32600,
      "Invalid request",
      5,
    ],
    [
      "jsonrpc 1.0",
      { jsonrpc: "1.0", id: 5, method: "start_payment", params: { amount: "1" } },
      -32600,
      "Invalid request",
      5,
    ],
    // NOTE: "a missing id" left this list: a request without an id is
    // now a JSON-RPC 2.0 notification (see the notification test below).
    [
      "an id that is an object",
      { jsonrpc: "2.0", id: {}, method: "start_payment", params: { amount: "1" } },
      -32600,
      "Invalid request",
      null,
    ],
    [
      "a missing method",
      { jsonrpc: "2.0", id: 5, params: { amount: "1" } },
      -32600,
      "Invalid request",
      5,
    ],
    [
      "missing params",
      { jsonrpc: "2.0", id: 5, method: "start_payment" },
      -32600,
      "Invalid request",
      5,
    ],
    ["a JSON string body", '"hello"', -32600, "Invalid request", null],
    ["a JSON number body", "42", -32600, "Invalid request", null],
    [
      "an unknown method",
      request({ amount: "1" }, { method: "stop_payment" }),
      -32601,
      "Method not found",
      111,
    ],
    ["no amount", request({ data: 1 }), -32602, "Invalid params: missing amount", 111],
    ["a null amount", request({ amount: null }), -32602, "Invalid params: missing amount", 111],
    ["params as an array", request(["1"]), -32602, "Invalid params: missing amount", 111],
    ["a numeric amount", request({ amount: 1.5 }), -32602, "Invalid params: invalid amount", 111],
    [
      "an amount with 9 decimals",
      request({ amount: "1.123456789" }),
      -32602,
      "Invalid params: invalid amount",
      111,
    ],
    ["a zero amount", request({ amount: "0" }), -32602, "Invalid params: invalid amount", 111],
    [
      "an amount above the cap",
      request({ amount: "20999984.00000001" }),
      -32602,
      "Invalid params: invalid amount",
      111,
    ],
    [
      "an exponent amount",
      request({ amount: "1e3" }),
      -32602,
      "Invalid params: invalid amount",
      111,
    ],
    [
      "a relative postback URL",
      request({ amount: "1", postback_url: "/done" }),
      -32602,
      "Invalid params: invalid postback URL",
      111,
    ],
    [
      "a non-http postback URL",
      request({ amount: "1", postback_url: "ftp://shop/x" }),
      -32602,
      "Invalid params: invalid postback URL",
      111,
    ],
    [
      "a numeric postback URL",
      request({ amount: "1", postback_url: 5 }),
      -32602,
      "Invalid params: invalid postback URL",
      111,
    ],
    [
      "a javascript: postback URL",
      request({ amount: "1", postback_url: "javascript:alert(1)" }),
      -32602,
      "Invalid params: invalid postback URL",
      111,
    ],
  ];

  test.each(errorCases)("%s → %i %s", async (_name, body, code, message, id) => {
    const { post, countPayments } = await setupApps();
    const response = await post(body);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ jsonrpc: "2.0", error: { code, message }, id });
    expect(countPayments()).toBe(0);
  });

  // NOTE: the original refused batches as "Invalid request"; batches
  // are now served (JSON-RPC 2.0 §6), one response per call, in order.
  test("a batch request answers each call in order", async () => {
    const { post, countPayments } = await setupApps();
    const response = await post([request({ amount: "1" }), request({ amount: "2" }, { id: 2 })]);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Array<{ id: number; result: { amount: string } }>;
    expect(body.map((r) => [r.id, r.result.amount])).toEqual([
      [111, "1"],
      [2, "2"],
    ]);
    expect(countPayments()).toBe(2);
    // and the server still serves
    expect((await post(request({ amount: "1" }))).status).toBe(200);
  });

  // NOTE: the original answered a request without an id with
  // "Invalid request"; it is now a JSON-RPC 2.0 notification: executed, no body.
  test("a notification (no id) does not crash the server", async () => {
    const { post, countPayments } = await setupApps();
    const response = await post({
      jsonrpc: "2.0",
      method: "start_payment",
      params: { amount: "1" },
    });
    expect(response.status).toBe(204);
    expect(await response.text()).toBe("");
    expect(countPayments()).toBe(1);
  });

  test("an unknown path is 404", async () => {
    const { sendPrivate } = await setupApps();
    expect((await sendPrivate({ method: "POST", path: "/rpc", body: "{}" })).status).toBe(404);
    expect((await sendPrivate({ method: "GET", path: "/" })).status).toBe(404);
  });

  test("a body over 64 KiB is refused with 413", async () => {
    const { post, countPayments } = await setupApps();
    const response = await post(request({ amount: "1", data: "x".repeat(70_000) }));
    expect(response.status).toBe(413);
    expect(countPayments()).toBe(0);
  });
});

// NOTE: every caller here is on 127.0.0.0/8, so the tests of who is refused
// turn the loopback exemption off and allow 127.0.0.2 only.
describe("private port allowlist", () => {
  test("a peer outside the allowlist gets 403 and creates nothing", async () => {
    const { post, countPayments } = await setupApps({ allow: ["127.0.0.2"], loopback: false });
    const response = await post(request({ amount: "1" }), { from: "127.0.0.3" });
    expect(response.status).toBe(403);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(await response.json()).toEqual({
      jsonrpc: "2.0",
      error: { code: -32001, message: "Forbidden" },
      id: null,
    });
    expect(countPayments()).toBe(0);
  });

  test("an allowlisted peer (IPv4-mapped form) is served", async () => {
    const { listener } = await setupApps({ allow: ["127.0.0.2/32"], loopback: false });
    const peers: Array<string | undefined> = [];
    // A dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d.
    const server = await listenNode(
      (req, res) => {
        peers.push(req.socket.remoteAddress);
        listener(req, res);
      },
      { host: "::ffff:127.0.0.1" },
    );
    try {
      const served = await send(server.port, {
        method: "POST",
        body: JSON.stringify(request({ amount: "1" })),
        from: "127.0.0.2",
      });
      expect(served.status).toBe(200);
      const refused = await send(server.port, {
        method: "POST",
        body: JSON.stringify(request({ amount: "1" })),
        from: "127.0.0.3",
      });
      expect(refused.status).toBe(403);
      expect(peers).toEqual(["::ffff:127.0.0.2", "::ffff:127.0.0.3"]);
    } finally {
      await server.close();
    }
  });

  test("X-Forwarded-For from an untrusted peer does not help", async () => {
    const { post } = await setupApps({ allow: ["127.0.0.2"], loopback: false });
    const response = await post(request({ amount: "1" }), {
      from: "127.0.0.3",
      headers: { "x-forwarded-for": "127.0.0.2" },
    });
    expect(response.status).toBe(403);
  });

  test("loopback is refused when the exemption is off", async () => {
    const { post } = await setupApps({ loopback: false });
    expect((await post(request({ amount: "1" }), { from: "127.0.0.1" })).status).toBe(403);
  });

  describe("with fetch as the client", () => {
    let server: Awaited<ReturnType<typeof listenNode>>;
    beforeAll(async () => {
      server = await listenNode((await setupApps()).listener);
    });
    afterAll(() => server.close());

    test("a request from 127.0.0.1 succeeds", async () => {
      const response = await fetch(`${server.url}/`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request({ amount: "0.29" })),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { result: { amount: string } };
      expect(body.result.amount).toBe("0.29");
    });
  });
});
