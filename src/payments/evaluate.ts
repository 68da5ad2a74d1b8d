/**
 * The payment rule, as a pure function of a payment's transfers, the head
 * and the deadline.
 */

export type TransferForEvaluation = {
  txHash: string;
  blockNumber: number;
  logIndex: number;
  value: bigint;
  /** UNIX seconds of the transfer's block; null/undefined: unknown, taken as in time. */
  blockTimestamp?: number | null;
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
  let inTime = 0n;
  let all = 0n;
  let lateAmount = 0n;
  let completing: TransferForEvaluation | undefined;
  let lateCompleting: TransferForEvaluation | undefined;
  for (const transfer of transfers) {
    all += transfer.value;
    if (isLate(transfer, expiresAt)) {
      lateAmount += transfer.value;
    } else {
      inTime += transfer.value;
      if (completing === undefined && inTime >= amount) completing = transfer;
    }
    if (lateCompleting === undefined && all >= amount) lateCompleting = transfer;
  }
  if (completing !== undefined) lateCompleting = undefined;
  const referenceBlock =
    completing?.blockNumber ?? lateCompleting?.blockNumber ?? transfers.at(-1)?.blockNumber;
  const confirmations = confirmationsOf(referenceBlock, head);
  const confirmed = confirmations >= requiredConfirmations;
  return {
    paidAmount: all,
    lateAmount,
    completing,
    paid: completing !== undefined && confirmed,
    lateCompleting,
    paidLate: lateCompleting !== undefined && confirmed,
    referenceBlock,
    confirmations,
  };
}
