/**
 * The public port's per-IP rate limit and headers, over real
 * sockets from several loopback addresses, with a clock moved by hand.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { clientKey, createRateLimiter } from "../../src/public/rate-limit.ts";
import { type Json, listenNode, setupApps } from "../helpers/private-app.ts";

describe("rate limiter", () => {
  test("allows max per window per client, then refuses with the seconds left in the window", async () => {
    let now = 1_000_000;
    const limiter = createRateLimiter({ windowMs: 60_000, max: 3, now: () => now });
    const hits = () => Array.from({ length: 4 }, () => limiter.hit("198.51.100.7"));
    expect(hits()).toEqual([
      { allowed: true },
      { allowed: true },
      { allowed: true },
      // Window [960000, 1020000): 20 s left.
      { allowed: false, retryAfterSeconds: 20 },
    ]);
    expect(limiter.hit("198.51.100.8")).toEqual({ allowed: true });
    now += 19_500;
    expect(limiter.hit("198.51.100.7")).toEqual({ allowed: false, retryAfterSeconds: 1 });
    now += 500; // the next window
    expect(limiter.hit("198.51.100.7")).toEqual({ allowed: true });
  });

  test("old windows are dropped whole, so memory stays bounded", async () => {
    let now = 0;
    const limiter = createRateLimiter({ windowMs: 1000, max: 5, now: () => now, maxClients: 100 });
    for (let i = 0; i < 50; i++) limiter.hit(`10.0.0.${i}`);
    expect(limiter.size()).toBe(50);
    now += 1000;
    limiter.hit("10.0.1.1");
    expect(limiter.size()).toBe(1);
  });

  test("past maxClients new clients pass uncounted; tracked ones stay limited", async () => {
    const limiter = createRateLimiter({ windowMs: 1000, max: 1, now: () => 0, maxClients: 2 });
    expect(limiter.hit("10.0.0.1").allowed).toBe(true);
    expect(limiter.hit("10.0.0.2").allowed).toBe(true);
    for (let i = 0; i < 5; i++) expect(limiter.hit("10.0.0.3").allowed).toBe(true);
    expect(limiter.size()).toBe(2);
    expect(limiter.hit("10.0.0.1").allowed).toBe(false);
  });

  test("max 0 turns the limit off", async () => {
    const limiter = createRateLimiter({ windowMs: 1000, max: 0, now: () => 0 });
    for (let i = 0; i < 10; i++) expect(limiter.hit("10.0.0.1").allowed).toBe(true);
    expect(limiter.size()).toBe(0);
  });

  test.each([
    ["198.51.100.7", "198.51.100.7"],
    ["::ffff:198.51.100.7", "198.51.100.7"],
    ["2001:db8:1:2:3:4:5:6", "20010db800010002/64"],
    ["2001:db8:1:2::9", "20010db800010002/64"],
    [undefined, "unknown"],
    ["not an ip", "unknown"],
  ])("clientKey(%s) = %s (IPv6 counted per /64)", (client, key) => {
    expect(clientKey(client)).toBe(key);
  });
});

describe("public port rate limit", () => {
  test("status.json answers 429 with Retry-After and the usual headers once a client is over the limit", async () => {
    const { getStatus, payments, clock } = await setupApps({
      rateLimit: { windowMs: 60_000, max: 2 },
    });
    const { id } = await payments.create({ amount: 1n, data: null, postbackUrl: null });
    const path = `/${id}/status.json`;
    expect((await getStatus(path, { from: "127.0.0.2" })).status).toBe(200);
    expect((await getStatus("/nope", { from: "127.0.0.2" })).status).toBe(404);
    const limited = await getStatus(path, { from: "127.0.0.2" });
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({ error: "too many requests" });
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(limited.headers.get("access-control-allow-origin")).toBe("*");
    expect(limited.headers.get("x-content-type-options")).toBe("nosniff");
    expect(limited.headers.get("cache-control")).toBe("no-store");
    // Another client is not affected; the same one is served again in the next window.
    expect((await getStatus(path, { from: "127.0.0.3" })).status).toBe(200);
    clock.advance(60_000);
    expect((await getStatus(path, { from: "127.0.0.2" })).status).toBe(200);
  });

  test("X-Forwarded-For counts only from a trusted proxy", async () => {
    const { getStatus, payments } = await setupApps({
      rateLimit: { windowMs: 60_000, max: 1 },
      publicTrustProxy: ["127.0.0.1", "::1"],
    });
    const { id } = await payments.create({ amount: 1n, data: null, postbackUrl: null });
    const path = `/${id}/status.json`;
    const via = (from: string, forwardedFor: string) =>
      getStatus(path, { from, headers: { "x-forwarded-for": forwardedFor } });
    // Behind the local proxy (127.0.0.1), each shopper has an own budget.
    for (const shopper of ["203.0.113.1", "203.0.113.2"]) {
      expect((await via("127.0.0.1", shopper)).status).toBe(200);
    }
    expect((await via("127.0.0.1", "203.0.113.1")).status).toBe(429);
    // A direct client (127.0.0.9, not a trusted proxy) cannot pick a budget by sending the header.
    expect((await via("127.0.0.9", "10.1.1.1")).status).toBe(200);
    expect((await via("127.0.0.9", "10.1.1.2")).status).toBe(429);
  });

  describe("over a real socket", () => {
    let server: Awaited<ReturnType<typeof listenNode>>;
    let id: string;
    beforeAll(async () => {
      const apps = await setupApps({ rateLimit: { windowMs: 3_600_000, max: 3 } });
      id = (
        await apps.payments.create({
          amount: 29_000_000n,
          data: '{"secret":"x"}',
          postbackUrl: null,
        })
      ).id;
      server = await listenNode(apps.publicListener);
    });
    afterAll(() => server.close());

    test("the TCP peer is the client: the fourth request from 127.0.0.1 gets 429", async () => {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 4; i++) {
        last = await fetch(`${server.url}/${id}/status.json`, {
          headers: { "x-forwarded-for": `198.51.100.${i}` },
        });
        statuses.push(last.status);
        if (last.status === 200) {
          const body = (await last.json()) as Json;
          expect(body.amount).toBe("0.29");
          expect(JSON.stringify(body)).not.toContain("secret");
        } else {
          await last.text();
        }
      }
      // No trusted proxy here: X-Forwarded-For is ignored.
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(last?.headers.get("x-content-type-options")).toBe("nosniff");
    });
  });
});
