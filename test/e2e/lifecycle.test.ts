/**
 * The lifecycle matrix on a real anvil chain: every path a payment can take,
 * each run straight through and with a daemon restart in the middle. At
 * every step status.json, get_payment and list_payments {status} must agree,
 * and at the end the queued events must be exactly the transitions taken.
 * On both backends: a SQLite file, and a fresh PostgreSQL database per test
 * on a throwaway cluster.
 */
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { Daemon } from "../../src/daemon.ts";
import { EVENT_TYPES, type EventType, PAYMENT_STATUSES } from "../../src/payments/index.ts";
import type { StatusView } from "../../src/payments/views.ts";
import { BACKENDS, type BackendName, useBackends } from "../helpers/backends.ts";
import {
  anvilCall,
  chainAlignedClock,
  payInNewBlock,
  rpc,
  startPayment,
  startReceiver,
  startTestChain,
  startTestDaemon,
  status,
  type TestChain,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const PAYER = ANVIL_ACCOUNTS[1];
let chain: TestChain;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const cleanups: Array<() => unknown> = [];
const backends = useBackends();

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000_000));
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
  await chain?.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Expected = Partial<StatusView> & { status: StatusView["status"] };

/** One run of a path: a daemon (restartable on the same fresh database) and one payment. */
async function scenario({ backend, restarts }: { backend: BackendName; restarts: boolean }) {
  const { target } = await backends.fresh(backend);
  const clock = await chainAlignedClock(chain);
  const start = async () => {
    const started = await startTestDaemon(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      target,
      {
        payments: { expiresAfter: "1h" },
        // Every event type, so the matrix sees every transition's event.
        postbacks: { events: [...EVENT_TYPES] },
      },
      { clock },
    );
    // NOTE: a fresh database's scan begins at the head of the scanner's
    // first poll, which on PostgreSQL waits for the election: a payment paid
    // before that poll (in a block under the head it sees) would be missed.
    // Nothing is created or paid here before the daemon has a scan position.
    try {
      await waitFor(async () => (await started.payments.scanPosition()) !== undefined, {
        what: "the first scan position",
      });
    } catch (error) {
      await started.stop();
      throw error;
    }
    return started;
  };
  let daemon: Daemon = await start();
  cleanups.push(() => daemon.stop());
  const payment = await startPayment(daemon.privateUrl, {
    amount: "2",
    postback_url: receiver.url,
  });
  const deadline = Math.floor(clock.now() / 1000) + 3600;

  /** The daemon has scanned every block up to the chain's head. */
  async function caughtUp() {
    const top = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
    await waitFor(async () => ((await daemon.payments.scanPosition())?.blockNumber ?? -1) >= top, {
      what: `scan up to block ${top}`,
    });
  }

  const t = {
    id: payment.id,
    pay: (amount: bigint): Promise<Hex> =>
      payInNewBlock(chain, { to: payment.address, value: amount }),
    async mine(blocks: number) {
      await chain.mine(blocks);
    },
    /** The clock passes the deadline; the next blocks come after it. */
    async passDeadline() {
      clock.skewMs += (deadline + 60) * 1000 - clock.now();
      await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [deadline + 90]);
      await chain.mine(1);
    },
    /** The shop cancels; the next blocks come after the cancel. */
    async cancel() {
      const { json } = await rpc(daemon.privateUrl, {
        jsonrpc: "2.0",
        id: 1,
        method: "cancel_payment",
        params: { id: payment.id },
      });
      expect(json.result.status).toBe("cancelled");
      const chainTime = Number((await chain.client.getBlock({ blockTag: "latest" })).timestamp);
      await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [
        Math.max(json.result.cancelled_at, chainTime) + 30,
      ]);
      await chain.mine(1);
    },
    /** Replaces the last `depth` blocks with empty ones (their transactions are dropped). */
    async reorg(depth: number) {
      await caughtUp();
      await anvilCall(chain.rpcUrl, "anvil_reorg", [depth, []]);
    },
    /**
     * Stops the daemon and starts it again on the same database (in the
     * restart variant), doing `meanwhile` while it is down.
     */
    async restart(meanwhile?: () => Promise<void>) {
      if (restarts) await daemon.stop();
      await meanwhile?.();
      if (restarts) daemon = await start();
    },
    /** status.json shows `expected` (waiting for it), and get_payment and list_payments agree. */
    async expect(expected: Expected) {
      const call = async (method: string, params: Record<string, unknown>) =>
        (await rpc(daemon.privateUrl, { jsonrpc: "2.0", id: 1, method, params })).json.result;
      const read = async () => (await status(daemon.publicUrl, payment.id)).body;
      // NOTE: read status.json on both sides of get_payment; a pair with a
      // change in between (a block being scanned) is read again.
      const { view, got } = await waitFor(
        async () => {
          const before = await read();
          const matches = Object.entries(expected).every(
            ([key, value]) =>
              JSON.stringify(before[key as keyof StatusView]) === JSON.stringify(value),
          );
          if (!matches) return undefined;
          const detail = await call("get_payment", { id: payment.id });
          const after = await read();
          return JSON.stringify(before) === JSON.stringify(after)
            ? { view: before, got: detail }
            : undefined;
        },
        { what: `status.json ${JSON.stringify(expected)}` },
      );
      const { id: _id, ...sameFields } = got;
      expect(Object.fromEntries(Object.keys(view).map((k) => [k, sameFields[k]]))).toEqual(view);
      for (const s of PAYMENT_STATUSES) {
        const listed = (await call("list_payments", { status: s })).payments.map(
          (p: { id: string }) => p.id,
        );
        expect(listed.includes(payment.id), `list_payments {status: ${s}}`).toBe(
          s === expected.status,
        );
      }
      return view;
    },
    /** The event types queued for the payment, in order. */
    async events(): Promise<EventType[]> {
      return (await daemon.payments.outbox.byPayment(payment.id)).map((e) => e.type as EventType);
    },
  };
  return t;
}

type Scenario = Awaited<ReturnType<typeof scenario>>;

const PATHS: Array<[string, (t: Scenario) => Promise<void>, EventType[]]> = [
  [
    "waiting → seen → paid",
    async (t) => {
      await t.expect({ status: "waiting", seen_at: null });
      await t.pay(tokens(2));
      await t.expect({ status: "seen", paid_amount: "2", paid_at: null });
      await t.restart();
      await t.mine(2);
      await t.expect({ status: "paid", paid_amount: "2" });
    },
    ["payment.seen", "payment.paid"],
  ],
  [
    "partial, then complete",
    async (t) => {
      await t.pay(tokens(1));
      await t.expect({ status: "seen", paid_amount: "1" });
      await t.mine(3);
      await t.restart();
      await t.expect({ status: "seen", paid_amount: "1", paid_at: null });
      await t.pay(tokens(1));
      await t.mine(2);
      await t.expect({ status: "paid", paid_amount: "2", overpaid_amount: "0" });
    },
    ["payment.seen", "payment.paid"],
  ],
  [
    "overpaid",
    async (t) => {
      await t.pay(tokens(3));
      await t.restart();
      await t.mine(2);
      await t.expect({ status: "paid", paid_amount: "3", overpaid_amount: "1" });
    },
    ["payment.seen", "payment.paid"],
  ],
  [
    "expired unpaid",
    async (t) => {
      await t.expect({ status: "waiting" });
      // With a restart, the deadline passes while the daemon is down: the sweep at start applies it.
      await t.restart(() => t.passDeadline());
      await t.expect({ status: "expired", paid_late: false, paid_amount: "0" });
      await t.restart();
      await t.expect({ status: "expired" });
    },
    ["payment.expired"],
  ],
  [
    "partial, expired, then paid late",
    async (t) => {
      await t.pay(tokens(1));
      await t.expect({ status: "seen", paid_amount: "1" });
      await t.passDeadline();
      await t.expect({ status: "expired", late: false });
      await t.restart();
      await t.pay(tokens(1));
      await t.expect({ status: "expired", late: true, late_amount: "1", paid_late: false });
      await t.mine(2);
      await t.expect({ status: "expired", paid_late: true, paid_amount: "2", paid_at: null });
    },
    ["payment.seen", "payment.expired", "payment.paid_late"],
  ],
  [
    "cancelled, then late funds",
    async (t) => {
      await t.cancel();
      await t.expect({ status: "cancelled" });
      await t.restart();
      await t.pay(tokens(2));
      await t.expect({ status: "cancelled", late: true, late_amount: "2", paid_late: false });
      await t.mine(2);
      await t.expect({ status: "cancelled", paid_late: true, paid_at: null, tx_hash: null });
    },
    ["payment.cancelled", "payment.paid_late"],
  ],
  [
    "seen, then reorged back to waiting",
    async (t) => {
      await t.pay(tokens(2));
      await t.expect({ status: "seen", paid_amount: "2" });
      await t.restart();
      await t.reorg(1);
      await t.expect({ status: "waiting", seen_at: null, paid_amount: "0", transfers: [] });
    },
    ["payment.seen"],
  ],
  [
    "paid, then reorged deeper than the confirmations",
    async (t) => {
      await t.pay(tokens(2));
      await t.mine(2);
      await t.expect({ status: "paid", reorged_after_paid: false });
      await t.restart();
      await t.reorg(4);
      await t.expect({ status: "paid", reorged_after_paid: true, paid_amount: "0" });
      await t.restart();
      await t.expect({ status: "paid", reorged_after_paid: true });
    },
    ["payment.seen", "payment.paid", "payment.reorged_after_paid"],
  ],
];

describe.each(BACKENDS)(
  "the lifecycle, on anvil and %s: status.json, get_payment and list_payments agree at every step",
  (backend) => {
    for (const restarts of [false, true]) {
      for (const [name, path, events] of PATHS) {
        test(`${name}${restarts ? " (daemon restarted midway)" : ""}: events ${events.join(", ")}`, async () => {
          const t = await scenario({ backend, restarts });
          await path(t);
          expect(await t.events()).toEqual(events);
        });
      }
    }
  },
);
