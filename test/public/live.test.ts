/**
 * The checkout page's live status stream (`GET /<id>/events`), read as raw
 * text/event-stream over real sockets: against a daemon on anvil (blocks
 * mined by the test), and, for the heartbeat, `createLiveStreams` behind a
 * bare node:http server with the real payment logic.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { Daemon } from "../../src/daemon.ts";
import { createLiveStreams } from "../../src/public/live.ts";
import {
  paymentsOn,
  rpc,
  silentLogger,
  startPayment,
  startTestChain,
  startTestDaemon,
  type TestChain,
  tempDir,
  tokens,
} from "../helpers/index.ts";
import { listenNode } from "../helpers/private-app.ts";
import { type EventStream, openEventStream } from "../helpers/sse.ts";

const PAYER = ANVIL_ACCOUNTS[1];
/** The reconnection delay live.ts tells browsers (RETRY_MS). */
const RETRY = { retry: 3000 };

/** An event id as the stream must compute it: the first 16 base64url characters of the body's SHA-256. */
const digest = (body: string) => createHash("sha256").update(body).digest("base64url").slice(0, 16);

let chain: TestChain;
let daemon: Daemon;
const dir = tempDir();
const open: EventStream[] = [];

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000));
  daemon = await startTestDaemon(chain, join(dir.path, "live.sqlite"));
});
afterAll(async () => {
  for (const stream of open) stream.close();
  await daemon?.stop();
  await chain?.stop();
  dir.cleanup();
});

async function events(id: string, options: { lastEventId?: string } = {}) {
  const stream = await openEventStream(`${daemon.publicUrl}/${id}/events`, options);
  open.push(stream);
  return stream;
}

async function statusBody(id: string): Promise<string> {
  const response = await fetch(`${daemon.publicUrl}/${id}/status.json`);
  expect(response.status).toBe(200);
  return response.text();
}

/** Mines a transfer of `amount` whole tokens to `to` (one block). */
async function pay(to: `0x${string}`, amount: number) {
  await chain.submitTransfer({ token: chain.token, from: PAYER, to, value: tokens(amount) });
  await chain.mine(1);
}

/** The next message, checked to be status.json's body right now with its digest as id; returns the parsed status. */
async function expectCurrent(stream: EventStream, id: string) {
  const message = await stream.nextMessage();
  const body = await statusBody(id);
  expect(message).toEqual({ id: digest(body), data: body });
  return JSON.parse(message.data) as { status: string; confirmations: number; paid_amount: string };
}

describe("live status stream on a daemon", () => {
  test("answers text/event-stream, no-store, X-Accel-Buffering no; first the retry delay, then status.json's exact body with its digest as id", async () => {
    const { id } = await startPayment(daemon.privateUrl, { amount: "1" });
    const stream = await events(id);
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(stream.headers["cache-control"]).toBe("no-store");
    expect(stream.headers["x-accel-buffering"]).toBe("no");
    expect(await stream.next()).toEqual(RETRY);
    const body = await statusBody(id);
    expect(JSON.parse(body)).toMatchObject({ status: "waiting", confirmations: 0 });
    expect(await stream.next()).toEqual({ id: digest(body), data: body });
    expect(stream.text()).toBe(`retry: 3000\n\nid: ${digest(body)}\ndata: ${body}\n\n`);
  });

  test("a mined transfer is pushed as seen, then each confirmation, then paid, and the stream ends after paid", async () => {
    const { id, address } = await startPayment(daemon.privateUrl, { amount: "2" });
    const stream = await events(id);
    expect(await stream.next()).toEqual(RETRY);
    expect(await expectCurrent(stream, id)).toMatchObject({ status: "waiting" });

    await pay(address, 2);
    expect(await expectCurrent(stream, id)).toMatchObject({ status: "seen", confirmations: 1 });
    await chain.mine(1);
    expect(await expectCurrent(stream, id)).toMatchObject({ status: "seen", confirmations: 2 });
    await chain.mine(1);
    expect(await expectCurrent(stream, id)).toMatchObject({
      status: "paid",
      confirmations: 3,
      paid_amount: "2",
    });
    expect(await stream.ended).toBe("end");
    expect(stream.pending()).toEqual([]);
  });

  test("a partly paid payment's stream follows its confirmations as blocks are mined", async () => {
    const { id, address } = await startPayment(daemon.privateUrl, { amount: "3" });
    const stream = await events(id);
    expect(await stream.next()).toEqual(RETRY);
    expect(await expectCurrent(stream, id)).toMatchObject({ status: "waiting" });
    await pay(address, 1);
    expect(await expectCurrent(stream, id)).toMatchObject({
      status: "seen",
      paid_amount: "1",
      confirmations: 1,
    });
    await chain.mine(1);
    expect(await expectCurrent(stream, id)).toMatchObject({
      status: "seen",
      paid_amount: "1",
      confirmations: 2,
    });
  });

  test("reconnecting with the last event's id sends nothing until the payment changes (no duplicate)", async () => {
    const { id, address } = await startPayment(daemon.privateUrl, { amount: "1" });
    const first = await events(id);
    expect(await first.next()).toEqual(RETRY);
    const waiting = await first.nextMessage();
    first.close();

    const again = await events(id, { lastEventId: waiting.id as string });
    expect(await again.next()).toEqual(RETRY);
    await pay(address, 1);
    // The first message after the reconnection is the change, not the status it already had.
    expect(await expectCurrent(again, id)).toMatchObject({ status: "seen", confirmations: 1 });
    expect(again.text()).not.toContain(waiting.data);
  });

  test("reconnecting with an older event's id sends the current status at once (no gap)", async () => {
    const { id, address } = await startPayment(daemon.privateUrl, { amount: "1" });
    const first = await events(id);
    await first.next();
    const waiting = await first.nextMessage();
    await pay(address, 1);
    const seen = await first.nextMessage();
    first.close();
    expect(seen.id).not.toBe(waiting.id);

    const again = await events(id, { lastEventId: waiting.id as string });
    expect(await again.next()).toEqual(RETRY);
    expect(await again.next()).toEqual({ id: seen.id, data: seen.data });
    expect(await statusBody(id)).toBe(seen.data);
  });

  test("an unknown payment answers 404", async () => {
    const response = await fetch(`${daemon.publicUrl}/0123456789abcdef/events`, {
      headers: { accept: "text/event-stream" },
    });
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toEqual({ error: "not found" });
  });

  test("a final payment's stream sends its status and ends: paid, cancelled", async () => {
    const paid = await startPayment(daemon.privateUrl, { amount: "1" });
    await pay(paid.address, 1);
    await chain.mine(2);
    const watching = await events(paid.id);
    await watching.next();
    for (;;) {
      const status = JSON.parse((await watching.nextMessage()).data) as { status: string };
      if (status.status === "paid") break;
    }
    await watching.ended;

    const stream = await events(paid.id);
    const body = await statusBody(paid.id);
    expect(JSON.parse(body)).toMatchObject({ status: "paid" });
    expect(await stream.ended).toBe("end");
    expect(stream.text()).toBe(`retry: 3000\n\nid: ${digest(body)}\ndata: ${body}\n\n`);

    const cancelled = await startPayment(daemon.privateUrl, { amount: "1" });
    const live = await events(cancelled.id);
    await live.next();
    await live.nextMessage();
    const { json } = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "cancel_payment",
      params: { id: cancelled.id },
    });
    expect(json.result.status).toBe("cancelled");
    // The open stream gets the cancellation pushed, then ends.
    expect(await expectCurrent(live, cancelled.id)).toMatchObject({ status: "cancelled" });
    expect(await live.ended).toBe("end");
    // A new one gets the final status and ends at once.
    const after = await events(cancelled.id);
    expect(await after.ended).toBe("end");
    const cancelledBody = await statusBody(cancelled.id);
    expect(after.text()).toBe(
      `retry: 3000\n\nid: ${digest(cancelledBody)}\ndata: ${cancelledBody}\n\n`,
    );
  });

  test("stopping the daemon ends the open streams", async () => {
    const own = tempDir();
    const other = await startTestDaemon(chain, join(own.path, "stop.sqlite"));
    try {
      const { id } = await startPayment(other.privateUrl, { amount: "1" });
      const streams = await Promise.all(
        [0, 1, 2].map(() => openEventStream(`${other.publicUrl}/${id}/events`)),
      );
      for (const stream of streams) {
        await stream.next();
        await stream.nextMessage();
      }
      await other.stop();
      expect(await Promise.all(streams.map((stream) => stream.ended))).toEqual([
        "end",
        "end",
        "end",
      ]);
    } finally {
      await other.stop();
      own.cleanup();
    }
  });
});

describe("live streams on their own", () => {
  test("an idle stream gets a heartbeat comment every heartbeatMs", async () => {
    const { payments } = await paymentsOn();
    const live = createLiveStreams({ payments, logger: silentLogger, heartbeatMs: 25 });
    const server = await listenNode((req, res) => {
      const id = (req.url ?? "").split("/")[1] ?? "";
      const lastEventId = req.headers["last-event-id"];
      if (!live.open(res, id, typeof lastEventId === "string" ? lastEventId : undefined)) {
        res.writeHead(404).end();
      }
    });
    try {
      const { id } = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
      const body = (await payments.statusJson(id)) as string;
      const stream = await openEventStream(`${server.url}/${id}/events`);
      expect(await stream.next()).toEqual(RETRY);
      expect(await stream.next()).toEqual({ id: digest(body), data: body });
      expect(await stream.next()).toEqual({ comment: "" });
      expect(await stream.next()).toEqual({ comment: "" });
      // Nothing but heartbeats after the first status (more may have come by now).
      const first = `retry: 3000\n\nid: ${digest(body)}\ndata: ${body}\n\n`;
      const rest = stream.text().slice(first.length);
      expect(stream.text().startsWith(first)).toBe(true);
      expect(rest).toBe(": \n\n".repeat(rest.length / 4));
      expect(rest.length).toBeGreaterThanOrEqual(8);
      expect(live.count()).toBe(1);

      // A cancellation is pushed from the change feed, then the stream ends.
      await payments.cancel(id);
      const cancelled = (await payments.statusJson(id)) as string;
      expect(await stream.nextMessage()).toEqual({ id: digest(cancelled), data: cancelled });
      expect(await stream.ended).toBe("end");
      expect(live.count()).toBe(0);
      stream.close();
    } finally {
      live.close();
      await server.close();
    }
  });
});
