/**
 * The payment rule, as a pure function of a payment's transfers, the heads
 * of their networks and the deadline.
 */

export type TransferForEvaluation = {
  txHash: string;
  blockNumber: number;
  logIndex: number;
  value: bigint;
  /** UNIX seconds of the transfer's block; null/undefined: unknown, taken as in time. */
  blockTimestamp?: number | null;
  /** The network the transfer is on; undefined: the only one ({@link evaluatePayment}). */
  network?: string;
};

export type Evaluation = {
  /** Everything received, confirmed or not, in time or late. */
  paidAmount: bigint;
  /** Received in blocks after the deadline. */
  lateAmount: bigint;
  /** The in-time transfer whose value brings the running sum (in chain order) to the amount. */
  completing: TransferForEvaluation | undefined;
  /** The completing transfer has the required confirmations: the payment is paid. */
  paid: boolean;
  /** Not completed in time, but in-time plus late funds reach the amount: the transfer that did it. */
  lateCompleting: TransferForEvaluation | undefined;
  /** `lateCompleting` has the required confirmations: the payment is paid late. */
  paidLate: boolean;
  /** Block that confirmations are counted from: the completing transfer's, else the latest. */
  referenceBlock: number | undefined;
  confirmations: number;
};

/** Confirmations of a block at `head`: the block itself counts as one. */
export function confirmationsOf(blockNumber: number | null | undefined, head: number): number {
  if (blockNumber === null || blockNumber === undefined) return 0;
  return Math.max(0, head - blockNumber + 1);
}

/** Whether a transfer's block came after the deadline (`expiresAt`, UNIX ms). */
export function isLate(
  transfer: Pick<TransferForEvaluation, "blockTimestamp">,
  expiresAt: number,
): boolean {
  const time = transfer.blockTimestamp;
  return time !== null && time !== undefined && time * 1000 > expiresAt;
}

/** What decides confirmations and counting on each network. */
export type NetworkRules = {
  /** The head of each network (a network without one has confirmed nothing). */
  heads: ReadonlyMap<string, number>;
  /** Confirmations a transfer on `network` needs. */
  requiredConfirmations(network: string): number;
  /** Whether the payment accepts funds on `network`; funds elsewhere are never counted. */
  accepts(network: string): boolean;
};

/** {@link evaluateTransfers}'s answer: {@link Evaluation}, for any number of networks. */
export type NetworkEvaluation = Evaluation & {
  /**
   * The confirmed in-time transfer whose value brings the confirmed in-time
   * sum (in arrival order) to the amount: the payment's `tx_hash` once paid.
   * With one network it is `completing` (confirmations come in chain order).
   */
  paidBy: TransferForEvaluation | undefined;
  /** The same for in-time plus late funds, when they alone complete it (`paidLate`). */
  latePaidBy: TransferForEvaluation | undefined;
  /** The transfer confirmations are counted from (`referenceBlock`'s). */
  reference: TransferForEvaluation | undefined;
  /** Received on networks the payment does not accept: recorded, never counted. */
  wrongNetworkAmount: bigint;
  /** How many transfers are on networks the payment accepts. */
  counted: number;
};

/** The network of a transfer without one: the only one there is. */
const ONLY_NETWORK = "";

const networkOf = (transfer: TransferForEvaluation) => transfer.network ?? ONLY_NETWORK;

/**
 * The transfers in arrival order: each network's in the order given (chain
 * order), the networks merged by block time (a block without a time first),
 * ties by network name. Block numbers of two chains say nothing about which
 * came first; their block times do.
 */
export function arrivalOrder(transfers: readonly TransferForEvaluation[]): TransferForEvaluation[] {
  const byNetwork = new Map<string, TransferForEvaluation[]>();
  for (const transfer of transfers) {
    const list = byNetwork.get(networkOf(transfer));
    if (list) list.push(transfer);
    else byNetwork.set(networkOf(transfer), [transfer]);
  }
  if (byNetwork.size <= 1) return [...transfers];
  const queues = [...byNetwork.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const next = queues.map(() => 0);
  const ordered: TransferForEvaluation[] = [];
  for (;;) {
    let pick = -1;
    let pickTime = 0;
    queues.forEach(([, list], q) => {
      const head = list[next[q] as number];
      if (head === undefined) return;
      const time = head.blockTimestamp ?? 0;
      if (pick === -1 || time < pickTime) {
        pick = q;
        pickTime = time;
      }
    });
    if (pick === -1) return ordered;
    const list = (queues[pick] as [string, TransferForEvaluation[]])[1];
    ordered.push(list[next[pick] as number] as TransferForEvaluation);
    next[pick] = (next[pick] as number) + 1;
  }
}

/**
 * The payment rule over any number of networks. Transfers on networks the
 * payment does not accept are only added up (`wrongNetworkAmount`). The
 * others are taken in arrival order ({@link arrivalOrder}), each confirmed
 * on its own network by that network's head and required confirmations:
 *
 * - `completing`: the in-time transfer that brings the received in-time
 *   sum to the amount (received in full, perhaps still confirming);
 * - `paid`: the confirmed in-time sum reaches the amount; `paidBy` is the
 *   transfer that brought it there;
 * - `paidLate`: not received in full in time, but the confirmed sum of all
 *   funds reaches the amount (`latePaidBy`).
 *
 * With one network this is exactly {@link evaluatePayment}: the confirmed
 * transfers are a prefix of the chain order, so `paidBy` is `completing`.
 * Each network's transfers must be in chain order.
 */
export function evaluateTransfers({
  amount,
  transfers,
  rules,
  expiresAt = Number.POSITIVE_INFINITY,
}: {
  amount: bigint;
  transfers: readonly TransferForEvaluation[];
  rules: NetworkRules;
  /** UNIX ms. */
  expiresAt?: number;
}): NetworkEvaluation {
  let wrongNetworkAmount = 0n;
  const counted: TransferForEvaluation[] = [];
  for (const transfer of transfers) {
    if (rules.accepts(networkOf(transfer))) counted.push(transfer);
    else wrongNetworkAmount += transfer.value;
  }
  const confirmationsOfTransfer = (transfer: TransferForEvaluation) => {
    const head = rules.heads.get(networkOf(transfer));
    return head === undefined ? 0 : confirmationsOf(transfer.blockNumber, head);
  };
  const isConfirmed = (transfer: TransferForEvaluation) =>
    confirmationsOfTransfer(transfer) >= rules.requiredConfirmations(networkOf(transfer));

  const ordered = arrivalOrder(counted);
  let inTime = 0n;
  let all = 0n;
  let lateAmount = 0n;
  let confirmedInTime = 0n;
  let confirmedAll = 0n;
  let completing: TransferForEvaluation | undefined;
  let lateCompleting: TransferForEvaluation | undefined;
  let paidBy: TransferForEvaluation | undefined;
  let latePaidBy: TransferForEvaluation | undefined;
  for (const transfer of ordered) {
    const confirmed = isConfirmed(transfer);
    all += transfer.value;
    if (isLate(transfer, expiresAt)) {
      lateAmount += transfer.value;
    } else {
      inTime += transfer.value;
      if (completing === undefined && inTime >= amount) completing = transfer;
      if (confirmed) {
        confirmedInTime += transfer.value;
        if (paidBy === undefined && confirmedInTime >= amount) paidBy = transfer;
      }
    }
    if (lateCompleting === undefined && all >= amount) lateCompleting = transfer;
    if (confirmed) {
      confirmedAll += transfer.value;
      if (latePaidBy === undefined && confirmedAll >= amount) latePaidBy = transfer;
    }
  }
  if (completing !== undefined) {
    lateCompleting = undefined;
    latePaidBy = undefined;
  }
  const reference = paidBy ?? completing ?? latePaidBy ?? lateCompleting ?? ordered.at(-1);
  return {
    paidAmount: all,
    lateAmount,
    completing,
    paid: paidBy !== undefined,
    lateCompleting,
    paidLate: latePaidBy !== undefined,
    referenceBlock: reference?.blockNumber,
    confirmations: reference === undefined ? 0 : confirmationsOfTransfer(reference),
    paidBy,
    latePaidBy,
    reference,
    wrongNetworkAmount,
    counted: counted.length,
  };
}

/**
 * A payment is paid when the running sum of its in-time transfers in chain
 * order reaches `amount` and the transfer that brought it there has
 * `requiredConfirmations` (earlier transfers then have at least as many).
 * That transfer's tx_hash is the payment's, as in the original 0xBTCpay.
 * The block's time decides "in time", never the time we scanned it, so a
 * daemon that was down still judges correctly. Funds after the deadline
 * never make a payment paid; if they complete it, it is "paid late".
 * `transfers` must be sorted by (blockNumber, logIndex).
 */
export function evaluatePayment({
  amount,
  transfers,
  head,
  requiredConfirmations,
  expiresAt = Number.POSITIVE_INFINITY,
}: {
  amount: bigint;
  transfers: readonly TransferForEvaluation[];
  head: number;
  requiredConfirmations: number;
  /** UNIX ms. */
  expiresAt?: number;
}): Evaluation {
  const heads = new Map([[ONLY_NETWORK, head]]);
  for (const transfer of transfers) heads.set(networkOf(transfer), head);
  const { paidAmount, lateAmount, completing, paid, lateCompleting, paidLate, ...rest } =
    evaluateTransfers({
      amount,
      transfers,
      expiresAt,
      rules: { heads, requiredConfirmations: () => requiredConfirmations, accepts: () => true },
    });
  return {
    paidAmount,
    lateAmount,
    completing,
    paid,
    lateCompleting,
    paidLate,
    referenceBlock: rest.referenceBlock,
    confirmations: rest.confirmations,
  };
}
