import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, test } from "vitest";
import { postbackBody } from "../../src/postbacks/body.ts";
import {
  classifyStatus,
  DEFAULT_RETRY_SCHEDULE_MS,
  nextStep,
  withJitter,
} from "../../src/postbacks/schedule.ts";
import { generateSecret, secretKey, sign, signatureHeader } from "../../src/postbacks/sign.ts";
import type { PaymentRow } from "../../src/store/storage.ts";

// Fixed test vector: key bytes 0x00..0x1f.
const SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_SECRET = `whsec_${Buffer.alloc(24, 7).toString("base64")}`;
const ID = "evt_0123456789abcdef01234567";
const TIMESTAMP = 1795314529;
const BODY = `{"id":"e8c16a2df20bf5a6","data":"{\\"order_id\\":\\"444\\"}","tx_hash":"0x${"ab".repeat(32)}"}`;
const EXPECTED = "v1,Pl+4jbSN2M3eEa4GECe+4oG2PTRN94E+bIddEyFv2u4=";

describe("postback signature (Standard Webhooks)", () => {
  test("sign matches the fixed test vector", async () => {
    expect(sign({ id: ID, timestamp: TIMESTAMP, body: BODY, secret: SECRET })).toBe(EXPECTED);
  });

  test("the test vector is HMAC-SHA256 of {id}.{timestamp}.{body}, computed independently", async () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const mac = createHmac("sha256", key).update(`${ID}.${TIMESTAMP}.${BODY}`).digest("base64");
    expect(EXPECTED).toBe(`v1,${mac}`);
  });

  test("the standardwebhooks library computes the same signature", async () => {
    expect(new Webhook(SECRET).sign(ID, new Date(TIMESTAMP * 1000), BODY)).toBe(EXPECTED);
  });

  test("during a rotation the header carries one v1 signature per secret, current first", async () => {
    const header = signatureHeader({
      id: ID,
      timestamp: TIMESTAMP,
      body: BODY,
      secrets: [SECRET, OTHER_SECRET],
    });
    const other = sign({ id: ID, timestamp: TIMESTAMP, body: BODY, secret: OTHER_SECRET });
    expect(header).toBe(`${EXPECTED} ${other}`);
    expect(other).not.toBe(EXPECTED);
  });

  test("the signature changes with every input", async () => {
    const base = { id: ID, timestamp: TIMESTAMP, body: BODY, secret: SECRET };
    const variants = [
      { ...base, id: "evt_other" },
      { ...base, timestamp: TIMESTAMP + 1 },
      { ...base, body: `${BODY} ` },
      { ...base, secret: OTHER_SECRET },
    ];
    for (const variant of variants) expect(sign(variant)).not.toBe(EXPECTED);
  });

  test("secrets are whsec_ + padded base64 of 24 to 64 bytes", async () => {
    expect(secretKey(SECRET)?.length).toBe(32);
    expect(secretKey(OTHER_SECRET)?.length).toBe(24);
    for (const bad of [
      "",
      "whsec_",
      SECRET.slice(6),
      `whsec_${Buffer.alloc(23).toString("base64")}`,
      `whsec_${Buffer.alloc(65).toString("base64")}`,
      "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
      "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
      "whsec_AAECAwQFBgcICQoLDA0O DxAREhMUFRYXGBkaGxwdHh8=",
    ]) {
      expect(secretKey(bad), bad).toBeUndefined();
    }
    expect(() => sign({ id: ID, timestamp: 1, body: "", secret: "whsec_" })).toThrow(TypeError);
  });

  test("generateSecret gives 32 random bytes the standardwebhooks library accepts", async () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(secretKey(secret)?.length).toBe(32);
    expect(generateSecret()).not.toBe(secret);
    const now = Math.floor(Date.now() / 1000);
    const signature = sign({ id: ID, timestamp: now, body: BODY, secret });
    expect(
      new Webhook(secret).verify(BODY, {
        "webhook-id": ID,
        "webhook-timestamp": String(now),
        "webhook-signature": signature,
      }),
    ).toEqual(JSON.parse(BODY));
  });
});

describe("retry schedule", () => {
  test("the default schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h", async () => {
    const s = 1000;
    expect(DEFAULT_RETRY_SCHEDULE_MS).toEqual([
      5 * s,
      300 * s,
      1800 * s,
      7200 * s,
      18_000 * s,
      36_000 * s,
      50_400 * s,
      72_000 * s,
      86_400 * s,
    ]);
  });

  test("2xx is delivered, 410 stops, everything else (3xx included) is retried", async () => {
    expect([200, 201, 204, 299].map(classifyStatus)).toEqual(Array(4).fill("delivered"));
    expect(classifyStatus(410)).toBe("gone");
    for (const status of [100, 199, 300, 301, 302, 307, 308, 400, 404, 429, 500, 502, 503, 504]) {
      expect(classifyStatus(status), String(status)).toBe("retry");
    }
  });

  test("after attempt n the n-th delay applies; after the last one the event is failed", async () => {
    const schedule = [1000, 2000];
    const fixed = { schedule, now: 10_000, jitter: 0 };
    expect(nextStep({ ...fixed, roundAttempts: 1 })).toEqual({
      state: "pending",
      next_attempt_at: 11_000,
    });
    expect(nextStep({ ...fixed, roundAttempts: 2 })).toEqual({
      state: "pending",
      next_attempt_at: 12_000,
    });
    expect(nextStep({ ...fixed, roundAttempts: 3 })).toEqual({ state: "failed" });
    expect(nextStep({ ...fixed, schedule: [], roundAttempts: 1 })).toEqual({ state: "failed" });
    // Ten attempts in all with the default schedule.
    expect(nextStep({ schedule: DEFAULT_RETRY_SCHEDULE_MS, now: 0, roundAttempts: 9 }).state).toBe(
      "pending",
    );
    expect(nextStep({ schedule: DEFAULT_RETRY_SCHEDULE_MS, now: 0, roundAttempts: 10 }).state).toBe(
      "failed",
    );
  });

  test("jitter stays within ±20 %", async () => {
    expect(withJitter(1000, 0.2, () => 0)).toBe(800);
    expect(withJitter(1000, 0.2, () => 0.5)).toBe(1000);
    expect(withJitter(1000, 0.2, () => 0.999_999)).toBe(1200);
    for (let i = 0; i < 200; i++) {
      const step = nextStep({ schedule: [300_000], now: 0, roundAttempts: 1 });
      if (step.state !== "pending") throw new Error("expected pending");
      expect(step.next_attempt_at).toBeGreaterThanOrEqual(240_000);
      expect(step.next_attempt_at).toBeLessThanOrEqual(360_000);
    }
  });

  test("a Retry-After longer than the scheduled delay wins; a shorter one does not shorten it", async () => {
    const fixed = { schedule: [5000], now: 0, jitter: 0, roundAttempts: 1 };
    expect(nextStep({ ...fixed, retryAfterMs: 60_000 })).toEqual({
      state: "pending",
      next_attempt_at: 60_000,
    });
    expect(nextStep({ ...fixed, retryAfterMs: 1000 })).toEqual({
      state: "pending",
      next_attempt_at: 5000,
    });
  });
});

describe("postback body", () => {
  const payment: PaymentRow = {
    id: "e8c16a2df20bf5a6",
    amount: "29000000",
    derivation_index: 0,
    address: "0x8c8d35429f74ec245f8ef2f4fd1e551cff97d650",
    data: '{"order_id": "444"}',
    postback_url: "https://shop.example/pb",
    created_at: 1_795_314_000_000,
    expires_at: 1_795_400_000_000,
    seen_at: 1_795_314_500_000,
    paid_at: 1_795_314_529_999,
    tx_hash: `0x${"ab".repeat(32)}`,
    block_number: 25,
    paid_amount: "30000000",
    late_amount: "0",
    paid_late_at: null,
    reorged_after_paid_at: null,
    order_id: null,
    description: null,
    return_url: null,
    cancel_url: null,
    cancelled_at: null,
    status: "paid",
    postback_events: null,
  };

  test("keeps the original's id, data (a JSON string, as sent) and tx_hash first, then the new fields", async () => {
    const body = postbackBody({
      event: { type: "payment.paid" },
      payment,
      decimals: 8,
      head: 27,
    });
    expect(body).toBe(
      `{"id":"e8c16a2df20bf5a6","data":"{\\"order_id\\": \\"444\\"}","tx_hash":"0x${"ab".repeat(32)}","event":"payment.paid","status":"paid","amount":"0.29","paid_amount":"0.3","address":"0x8c8d35429f74ec245f8ef2f4fd1e551cff97d650","block_number":25,"confirmations":3,"paid_at":1795314529,"late_amount":"0","paid_late":false,"reorged_after_paid":false}`,
    );
  });

  test("works for any event type, including one for a payment that is not paid", async () => {
    const body = JSON.parse(
      postbackBody({
        event: { type: "payment.expired" },
        payment: {
          ...payment,
          data: null,
          paid_at: null,
          tx_hash: null,
          block_number: null,
          paid_amount: "0",
          status: "expired",
        },
        decimals: 8,
        head: 100,
      }),
    );
    expect(body).toEqual({
      id: payment.id,
      data: "null",
      tx_hash: null,
      event: "payment.expired",
      status: "expired",
      amount: "0.29",
      paid_amount: "0",
      address: payment.address,
      block_number: null,
      confirmations: 0,
      paid_at: null,
      late_amount: "0",
      paid_late: false,
      reorged_after_paid: false,
    });
  });
});
