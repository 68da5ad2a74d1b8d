/**
 * What readers see of a payment, built from its stored fields only (the
 * lifecycle decided them): status.json, and the private port's rows. A page
 * of rows costs one query each for the head, the transfers and the events,
 * however many rows it has.
 */
import { toUnixSeconds } from "../internal/clock.ts";
import type {
  EventQueries,
  EventRow,
  PaymentQueries,
  PaymentStatus,
  StoredPayment,
  TransferRow,
} from "../store/storage.ts";
import { formatAmount } from "./amount.ts";
import { confirmationsOf, isLate } from "./evaluate.ts";
import { acceptedNetworksOf, deadlineOf } from "./lifecycle.ts";

/** One received transfer as status.json shows it. */
export type TransferView = {
  tx_hash: string;
  amount: string;
  block_number: number;
  /** On the transfer's own network. */
  confirmations: number;
  /** In a block after the payment's deadline. */
  late: boolean;
  /** With `networks`: the network it is on. */
  network?: string;
  /** With `networks`: on a network the payment does not accept (not counted). */
  wrong_network?: boolean;
};

/** GET /:id/status.json: the original fields first, then the additive ones. */
export type StatusView = {
  address: string;
  amount: string;
  seen_at: number | null;
  paid_at: number | null;
  tx_hash: string | null;
  /** With `networks`: the network of `tx_hash`; null until paid. */
  network?: string | null;
  status: PaymentStatus;
  paid_amount: string;
  confirmations: number;
  required_confirmations: number;
  expires_at: number;
  /** Funds arrived after the deadline. */
  late: boolean;
  /** Late funds completed the payment: it stays expired (or cancelled); the shop decides. */
  paid_late: boolean;
  late_amount: string;
  overpaid_amount: string;
  /** A reorg removed a transfer after the payment was marked paid. */
  reorged_after_paid: boolean;
  /** With `networks`: the networks whose funds count for this payment. */
  networks?: string[];
  /** With `networks`: funds arrived on a network the payment does not accept. */
  wrong_network?: boolean;
  /** With `networks`: how much, never counted (recover it with the same key on that network). */
  wrong_network_amount?: string;
  transfers: TransferView[];
};

/**
 * What the hosted checkout page shows: status.json's view plus the shop's
 * description and redirect URLs (nothing else of the private fields).
 */
export type CheckoutView = {
  view: StatusView;
  /** Base units: the amount due, everything received, what came after the deadline. */
  amounts: { amount: bigint; paid: bigint; late: bigint };
  description: string | null;
  returnUrl: string | null;
  cancelUrl: string | null;
};

/** A payment as the private port lists it: its row, status.json's view and its postback events. */
export type PaymentDetail = { row: StoredPayment; view: StatusView; events: EventRow[] };

/** Status bodies cached at most (then the cache starts over): a few MB. */
const STATUS_CACHE_SIZE = 10_000;

export type PaymentViews = {
  view(id: string): Promise<StatusView | undefined>;
  /**
   * status.json's body for `id` (undefined: no such payment), served from a
   * cache that any write to the database (by this daemon or another
   * process) invalidates.
   */
  statusJson(id: string): Promise<string | undefined>;
  /**
   * status.json's body if the cache has it for the current data, without
   * waiting (the hot path); undefined: ask `statusJson`.
   */
  cachedStatusJson(id: string): string | undefined;
  /**
   * status.json's bodies of several payments, in a few queries however many
   * (live streams after a commit that changed many); unknown ids are left out.
   */
  statusJsonMany(ids: readonly string[]): Promise<Map<string, string>>;
  /** Views and events of `rows`, in their order, in a bounded number of queries. */
  details(rows: readonly StoredPayment[]): Promise<PaymentDetail[]>;
  /** The checkout page's view of `id`; undefined: no such payment. */
  checkout(id: string): Promise<CheckoutView | undefined>;
};

/** What the views know of the networks the daemon watches. */
export type ViewNetworks = {
  /** Their names, in config order. */
  names: readonly string[];
  /** The confirmations a transfer on `network` needs. */
  requiredConfirmations(network: string): number;
  /**
   * Whether views carry the network fields: with `networks` in the config.
   * With the single `chain` section they are left out, so a shop built
   * for one chain reads exactly what it always read.
   */
  show: boolean;
};

export function createPaymentViews({
  store,
  events,
  dataVersion,
  dataVersionNow,
  decimals,
  networks,
}: {
  store: PaymentQueries;
  events: EventQueries;
  /** Changes on any write to the database. */
  dataVersion: () => Promise<string>;
  /** The same without waiting, or undefined (Storage.dataVersionNow). */
  dataVersionNow: () => string | undefined;
  decimals: number;
  networks: ViewNetworks;
}): PaymentViews {
  const statusCache = new Map<string, { body: string; version: string }>();
  const heads = () => store.heads();
  const headOf = (atHeads: ReadonlyMap<string, number>, network: string | null) =>
    network === null ? 0 : (atHeads.get(network) ?? 0);

  /** Transfers are shown once something counted arrived, or funds on a wrong network. */
  const hasTransfers = (row: StoredPayment) =>
    row.seen_at !== null || row.wrong_network_amount !== "0";

  function viewOf(
    row: StoredPayment,
    atHeads: ReadonlyMap<string, number>,
    transfers: readonly TransferRow[],
  ): StatusView {
    const amount = BigInt(row.amount);
    const paid = BigInt(row.paid_amount);
    const late = BigInt(row.late_amount);
    const wrong = BigInt(row.wrong_network_amount);
    const deadline = deadlineOf(row);
    const restricted = acceptedNetworksOf(row);
    const accepted = restricted ?? networks.names;
    // Confirmations are counted on the network of block_number; before any
    // transfer, the first network the payment accepts says how many it needs.
    const referenceNetwork = row.block_network ?? accepted[0] ?? networks.names[0] ?? "";
    const show = networks.show;
    return {
      address: row.address,
      amount: formatAmount(amount, decimals),
      seen_at: row.seen_at === null ? null : toUnixSeconds(row.seen_at),
      paid_at: row.paid_at === null ? null : toUnixSeconds(row.paid_at),
      tx_hash: row.tx_hash,
      ...(show ? { network: row.tx_hash === null ? null : row.network } : {}),
      status: row.status,
      paid_amount: formatAmount(paid, decimals),
      confirmations: confirmationsOf(row.block_number, headOf(atHeads, row.block_network)),
      required_confirmations: networks.requiredConfirmations(referenceNetwork),
      expires_at: toUnixSeconds(row.expires_at),
      late: late > 0n,
      paid_late: row.paid_late_at !== null,
      late_amount: formatAmount(late, decimals),
      overpaid_amount: formatAmount(paid > amount ? paid - amount : 0n, decimals),
      reorged_after_paid: row.reorged_after_paid_at !== null,
      ...(show
        ? {
            networks: [...accepted],
            wrong_network: wrong > 0n,
            wrong_network_amount: formatAmount(wrong, decimals),
          }
        : {}),
      transfers: transfers.map((t) => ({
        tx_hash: t.tx_hash,
        amount: formatAmount(BigInt(t.value), decimals),
        block_number: t.block_number,
        confirmations: confirmationsOf(t.block_number, headOf(atHeads, t.network)),
        late: isLate({ blockTimestamp: t.block_timestamp }, deadline),
        ...(show
          ? {
              network: t.network,
              wrong_network: restricted !== undefined && !restricted.includes(t.network),
            }
          : {}),
      })),
    };
  }

  async function currentView(row: StoredPayment): Promise<StatusView> {
    return viewOf(row, await heads(), hasTransfers(row) ? await store.transfersOf(row.id) : []);
  }

  async function view(id: string): Promise<StatusView | undefined> {
    const row = await store.getPayment(id);
    return row ? await currentView(row) : undefined;
  }

  return {
    view,
    cachedStatusJson(id) {
      const version = dataVersionNow();
      const hit = version === undefined ? undefined : statusCache.get(id);
      return hit && hit.version === version ? hit.body : undefined;
    },
    async statusJson(id) {
      const version = await dataVersion();
      const hit = statusCache.get(id);
      if (hit && hit.version === version) return hit.body;
      const current = await view(id);
      if (!current) return undefined;
      const body = JSON.stringify(current);
      if (statusCache.size >= STATUS_CACHE_SIZE) statusCache.clear();
      statusCache.set(id, { body, version });
      return body;
    },
    async checkout(id) {
      const row = await store.getPayment(id);
      if (!row) return undefined;
      return {
        view: await currentView(row),
        amounts: {
          amount: BigInt(row.amount),
          paid: BigInt(row.paid_amount),
          late: BigInt(row.late_amount),
        },
        description: row.description,
        returnUrl: row.return_url,
        cancelUrl: row.cancel_url,
      };
    },
    async statusJsonMany(ids) {
      const version = await dataVersion();
      const bodies = new Map<string, string>();
      const missing: string[] = [];
      for (const id of ids) {
        const hit = statusCache.get(id);
        if (hit && hit.version === version) bodies.set(id, hit.body);
        else missing.push(id);
      }
      if (missing.length === 0) return bodies;
      const rows = await store.getPaymentsMany(missing);
      const atHeads = await heads();
      const transfers = await store.transfersOfMany(rows.filter(hasTransfers).map((row) => row.id));
      for (const row of rows) {
        const body = JSON.stringify(viewOf(row, atHeads, transfers.get(row.id) ?? []));
        if (statusCache.size >= STATUS_CACHE_SIZE) statusCache.clear();
        statusCache.set(row.id, { body, version });
        bodies.set(row.id, body);
      }
      return bodies;
    },
    async details(rows) {
      if (rows.length === 0) return [];
      const atHeads = await heads();
      const seen = rows.filter(hasTransfers).map((row) => row.id);
      const transfers = await store.transfersOfMany(seen);
      const eventsByPayment = await events.byPayments(rows.map((row) => row.id));
      return rows.map((row) => ({
        row,
        view: viewOf(row, atHeads, transfers.get(row.id) ?? []),
        events: eventsByPayment.get(row.id) ?? [],
      }));
    },
  };
}
