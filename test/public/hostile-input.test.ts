/**
 * Hostile input on both ports, as fast-check properties (1,000 runs each),
 * over real sockets to the daemon's listeners on a real in-memory SQLite.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { formatAmount } from "../../src/payments/amount.ts";
import { generateApiKey, hashApiKey, type Permission } from "../../src/rpc/api-keys.ts";
import { STATUS_KEYS } from "../helpers/index.ts";
import { type Json, setupApps } from "../helpers/private-app.ts";

const RUNS = { numRuns: 1000 };

/** Error codes the private port may answer with; -32603 (Internal error) is never one. */
const EXPECTED_CODES = new Set([-32700, -32600, -32601, -32602, -32001]);

/** Checks one JSON-RPC response object's shape; returns it. */
function checkResponse(response: Json): Json {
  expect(response.jsonrpc).toBe("2.0");
  expect("result" in response !== "error" in response).toBe(true);
  if ("error" in response) {
    expect(Object.keys(response.error)).toEqual(["code", "message"]);
    expect(EXPECTED_CODES.has(response.error.code)).toBe(true);
    expect(typeof response.error.message).toBe("string");
  }
  const id = response.id;
  expect(id === null || typeof id === "string" || typeof id === "number").toBe(true);
  return response;
}

/** Parses the body: one response or a non-empty array of them. */
function responsesOf(text: string): Json[] {
  const body = JSON.parse(text);
  const list = Array.isArray(body) ? body : [body];
  expect(list.length).toBeGreaterThan(0);
  return list.map(checkResponse);
}

const hexId = fc.stringMatching(/^[0-9a-f]{16}$/);
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
);
/** Mostly `valid`, sometimes `invalid`: so that both paths are exercised. */
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown>) =>
  fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: invalid, weight: 1 });

/** Payment ids the property has seen created, so get/cancel also hit real payments. */
const knownIds: string[] = [];
const paymentIdArb = mostly(
  fc.oneof(
    hexId,
    fc.nat().map((i) => knownIds[i % Math.max(1, knownIds.length)] ?? "0000000000000000"),
  ),
  fc.oneof(anyString, fc.integer(), fc.constant(null)),
);
const amount = mostly(
  fc.oneof(
    fc.constantFrom("1", "0.29", "222.333", "20999984", "0.00000001", "1.50"),
    fc.stringMatching(/^[1-9][0-9]{0,7}(\.[0-9]{1,8})?$/),
  ),
  fc.oneof(
    fc.constantFrom("0", "-1", "1e3", "1.", ".5", " 1", "1.123456789", "20999984.00000001", "０"),
    fc.stringMatching(/^[0-9]{1,9}(\.[0-9]{0,9})?$/),
    fc.double(),
    fc.integer(),
    fc.constant(null),
    fc.boolean(),
    anyString,
  ),
);
const url = mostly(
  fc.webUrl(),
  fc.oneof(
    fc.constantFrom("ftp://shop/x", "/relative", "javascript:alert(1)", "http://"),
    anyString,
    fc.integer(),
    fc.constant(null),
  ),
);
const startParams = fc.record(
  {
    amount,
    data: fc.jsonValue({ maxDepth: 3 }),
    postback_url: url,
    return_url: url,
    cancel_url: url,
    // A few recurring order ids, so duplicates and amount conflicts happen.
    order_id: mostly(
      fc.oneof(fc.constantFrom("o-1", "o-2", "o-3"), fc.string({ minLength: 1, maxLength: 128 })),
      fc.oneof(fc.constant(""), fc.string({ minLength: 129, maxLength: 140 }), fc.integer()),
    ),
    expires_in: mostly(
      fc.integer({ min: 60, max: 2_592_000 }),
      fc.oneof(fc.integer(), fc.double(), anyString),
    ),
    description: mostly(
      fc.string({ minLength: 1, maxLength: 100 }),
      fc.oneof(fc.constant(""), fc.string({ minLength: 1001, maxLength: 1010 }), fc.integer()),
    ),
  },
  { requiredKeys: ["amount"] },
);
const readParams = fc.record(
  {
    id: paymentIdArb,
    order_id: mostly(fc.constantFrom("o-1", "o-2", "o-3"), fc.oneof(anyString, fc.integer())),
    status: mostly(
      fc.constantFrom("waiting", "seen", "paid", "expired", "cancelled"),
      fc.oneof(anyString, fc.integer()),
    ),
    since: mostly(fc.integer({ min: 0, max: 2_000_000_000 }), fc.oneof(fc.double(), anyString)),
    limit: mostly(fc.integer({ min: 1, max: 20 }), fc.oneof(fc.integer(), fc.double(), anyString)),
    cursor: fc.oneof(anyString, fc.base64String({ maxLength: 40 })),
  },
  { requiredKeys: [] },
);
const params = fc.oneof(
  { arbitrary: startParams, weight: 3 },
  { arbitrary: readParams, weight: 2 },
  { arbitrary: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }), weight: 1 },
);
const method = mostly(
  fc.constantFrom(
    "start_payment",
    "start_payment",
    "get_payment",
    "list_payments",
    "cancel_payment",
    "resend_postback",
  ),
  fc.oneof(fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty"), anyString),
);
/** JSON-RPC-shaped calls, mostly well formed, always with an id (answers are checked). */
const rpcCall = mostly(
  fc.record({
    jsonrpc: fc.constant("2.0"),
    id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)),
    method,
    params,
  }),
  fc.record(
    {
      jsonrpc: fc.oneof(fc.constant("2.0"), fc.constant("1.0"), fc.integer()),
      id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)),
      method,
      params: fc.oneof(params, fc.jsonValue({ maxDepth: 1 })),
    },
    { requiredKeys: ["id"] },
  ),
) as fc.Arbitrary<Json>;

describe("private port: hostile input (fast-check)", () => {
  test("arbitrary JSON values as the body: always a JSON-RPC error, never a 5xx, never a payment", async () => {
    const { post, countPayments } = await setupApps();
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        const response = await post(JSON.stringify(value));
        expect(response.status).toBe(200);
        for (const r of responsesOf(await response.text())) expect(r).toHaveProperty("error");
        expect(countPayments()).toBe(0);
      }),
      RUNS,
    );
  });

  test("arbitrary strings as the body: always a JSON-RPC error, never a 5xx, never a payment", async () => {
    const { post, countPayments } = await setupApps();
    await fc.assert(
      fc.asyncProperty(anyString, async (text) => {
        const response = await post(text);
        // A string that happens to be a JSON array holding only notifications is 204;
        // fast-check's strings are far from that, and anything else must be an error.
        expect(response.status).toBe(200);
        for (const r of responsesOf(await response.text())) expect(r).toHaveProperty("error");
        expect(countPayments()).toBe(0);
      }),
      RUNS,
    );
  });

  test("JSON-RPC-shaped calls and batches: never a 5xx or Internal error; a payment row only for a valid start_payment", async () => {
    const { post, countPayments, payments } = await setupApps();
    const known = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(rpcCall, fc.array(rpcCall, { minLength: 1, maxLength: 5 })),
        async (body) => {
          const before = countPayments();
          const response = await post(JSON.stringify(body));
          expect(response.status).toBe(200);
          const calls = Array.isArray(body) ? body : [body];
          const responses = responsesOf(await response.text());
          expect(responses).toHaveLength(calls.length);
          let created = 0;
          for (const [i, r] of responses.entries()) {
            const sent = calls[i] as Json;
            expect(r.id).toEqual(
              typeof sent.id === "string" || typeof sent.id === "number" ? sent.id : null,
            );
            if (!("result" in r)) continue;
            expect(sent.jsonrpc).toBe("2.0");
            if (sent.method !== "start_payment") continue;
            const row = await payments.get(r.result.id);
            expect(row).toBeDefined();
            expect(formatAmount(BigInt(row?.amount ?? -1), 8)).toBe(r.result.amount);
            if (!known.has(r.result.id)) created++;
            known.add(r.result.id);
            knownIds.push(r.result.id);
          }
          expect(countPayments() - before).toBe(created);
        },
      ),
      RUNS,
    );
    // The generator does reach valid start_payments, duplicates and conflicts included.
    expect(known.size).toBeGreaterThan(20);
    expect(await payments.getByOrderId("o-1")).toBeDefined();
  });

  test("with API keys: a call runs only with a valid key holding its permission", async () => {
    const keys = { create: generateApiKey(), read: generateApiKey(), all: generateApiKey() };
    const granted: Record<string, Permission[]> = {
      [keys.create]: ["payments:create"],
      [keys.read]: ["payments:read"],
      [keys.all]: ["payments:create", "payments:read", "payments:cancel", "postbacks:resend"],
    };
    const { post, countPayments } = await setupApps({
      apiKeys: Object.entries(granted).map(([key, permissions], i) => ({
        name: `k${i}`,
        hash: hashApiKey(key),
        permissions,
      })),
    });
    const needs: Record<string, Permission> = {
      start_payment: "payments:create",
      get_payment: "payments:read",
      list_payments: "payments:read",
      cancel_payment: "payments:cancel",
    };
    const outcomes: Record<number, number> = {};
    const authorization = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(...Object.keys(granted)).map((key) => `Bearer ${key}`),
      fc.constantFrom(...Object.keys(granted)).map((key) => `Bearer ${key.slice(0, -1)}`),
      anyString.map((s) => `Bearer ${s}`),
      anyString.filter((s) => !/[\r\n\0]/.test(s)),
    );
    await fc.assert(
      fc.asyncProperty(
        authorization.filter((a) => a === undefined || /^[\t\x20-\x7e]*$/.test(a)),
        fc.record({
          jsonrpc: fc.constant("2.0"),
          id: fc.integer(),
          method: fc.constantFrom(...Object.keys(needs), "nope"),
          params,
        }),
        async (auth, call) => {
          const before = countPayments();
          const response = await post(
            JSON.stringify(call),
            auth === undefined ? {} : { headers: { authorization: auth } },
          );
          const key = /^Bearer +(\S+) *$/i.exec(auth ?? "")?.[1];
          const permissions =
            key !== undefined && Object.hasOwn(granted, key) ? granted[key] : undefined;
          const [answer] = responsesOf(await response.text());
          if (!permissions) {
            expect(response.status).toBe(403);
            expect(answer.error.message).toMatch(/^Forbidden: (missing|invalid) API key$/);
          } else if (
            call.method in needs &&
            !permissions.includes(needs[call.method] as Permission)
          ) {
            expect(response.status).toBe(403);
            expect(answer.error.message).toBe(
              `Forbidden: missing permission ${needs[call.method]}`,
            );
          } else {
            expect(response.status).toBe(200);
          }
          if (response.status === 403) expect(countPayments()).toBe(before);
          outcomes[response.status] = (outcomes[response.status] ?? 0) + 1;
        },
      ),
      RUNS,
    );
    // Both refusals and served calls were exercised.
    expect(outcomes[200]).toBeGreaterThan(50);
    expect(outcomes[403]).toBeGreaterThan(50);
    expect(countPayments()).toBeGreaterThan(0);
  });

  test("arbitrary paths and methods on the private port: 404 or a JSON-RPC answer, never a 5xx", async () => {
    const { sendPrivate } = await setupApps();
    await fc.assert(
      fc.asyncProperty(
        fc.array(anyString, { maxLength: 4 }),
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
        async (segments, verb) => {
          const path = `/${segments.map(encodeURIComponent).join("/")}`;
          const response = await sendPrivate({
            method: verb,
            path,
            ...(verb === "GET" ? {} : { body: "{}" }),
          });
          expect(response.status).toBeLessThan(500);
          if (path === "/" && verb === "POST") expect(response.status).toBe(200);
          else expect(response.status).toBe(404);
        },
      ),
      RUNS,
    );
  });
});

describe("public port: hostile input (fast-check)", () => {
  const statusKeys = STATUS_KEYS;

  test("arbitrary path segments: 404 or a valid status, never a 5xx", async () => {
    const { payments, sendPublic } = await setupApps();
    const ids = (
      await Promise.all(
        Array.from({ length: 5 }, () =>
          payments.create({ amount: 1n, data: '{"secret":1}', postbackUrl: null }),
        ),
      )
    ).map((row) => row.id);
    const segment = fc.oneof(
      anyString.map(encodeURIComponent),
      anyString.filter((s) => !/[?#]/.test(s)),
      fc.constantFrom(...ids, "status.json", "..", ".", "%2e%2e", "%00", "%", "%zz", ""),
    );
    const pathArb = fc.oneof(
      fc.array(segment, { maxLength: 4 }).map((segments) => `/${segments.join("/")}`),
      // Near misses and real ids, plain or percent-encoded.
      fc
        .tuple(
          fc.constantFrom(...ids, "0123456789abcdef"),
          fc.constantFrom("status.json", "status.json/", "STATUS.JSON", "status%2ejson", "status"),
          fc.boolean(),
        )
        .map(([id, tail, encode]) => {
          const first = encode
            ? [...id].map((ch) => `%${ch.charCodeAt(0).toString(16)}`).join("")
            : id;
          return `/${first}/${tail}`;
        }),
    );
    let served = 0;
    await fc.assert(
      fc.asyncProperty(
        pathArb,
        fc.constantFrom("GET", "GET", "HEAD", "POST", "OPTIONS"),
        async (path, verb) => {
          // Sent as is when node:http can; else as a browser sends it (percent-encoded,
          // dot segments resolved).
          const wire = /^[\x21-\x7e]*$/.test(path)
            ? path
            : new URL(`http://127.0.0.1${path}`).pathname;
          const response = await sendPublic({ method: verb, path: wire });
          expect([200, 404]).toContain(response.status);
          expect(response.headers.get("x-content-type-options")).toBe("nosniff");
          if (response.status === 200 && verb === "GET") {
            const body = (await response.json()) as Json;
            expect(Object.keys(body)).toEqual(statusKeys);
            expect(response.headers.get("cache-control")).toBe("no-store");
            served++;
          }
        },
      ),
      RUNS,
    );
    expect(served).toBeGreaterThan(0);
  });

  test("with a rate limit: 200, 404 or 429 with Retry-After, never a 5xx", async () => {
    // The shoppers, IPv6 ones included, are named by a local proxy (127.0.0.1).
    const { payments, getStatus, clock } = await setupApps({
      rateLimit: { windowMs: 10_000, max: 3 },
      publicTrustProxy: ["127.0.0.1"],
    });
    const seen = new Set<number>();
    const id = (await payments.create({ amount: 1n, data: null, postbackUrl: null })).id;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2", "::1"),
        fc.constantFrom(`/${id}/status.json`, "/nope", "/0123456789abcdef/status.json"),
        fc.integer({ min: 0, max: 4000 }),
        async (client, path, elapse) => {
          clock.advance(elapse);
          const response = await getStatus(path, { headers: { "x-forwarded-for": client } });
          expect([200, 404, 429]).toContain(response.status);
          seen.add(response.status);
          if (response.status === 429) {
            expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
            expect(Number(response.headers.get("retry-after"))).toBeLessThanOrEqual(10);
          }
        },
      ),
      RUNS,
    );
    expect([...seen].sort()).toEqual([200, 404, 429]);
  });
});
