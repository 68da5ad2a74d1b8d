/**
 * The payment rule, as a pure function of a payment's transfers and the head.
 */

export type TransferForEvaluation = {
  txHash: string;
  blockNumber: number;
  logIndex: number;
  value: bigint;
};

export type Evaluation = {
  /** Everything received, confirmed or not. */
  paidAmount: bigint;
  /** The transfer whose value brings the running sum (in chain order) to the amount. */
  completing: TransferForEvaluation | undefined;
  /** Block that confirmations are counted from: the completing transfer's, else the latest. */
  referenceBlock: number | undefined;
  confirmations: number;
  /** The completing transfer has the required confirmations. */
  paid: boolean;
};

/** Confirmations of a block at `head`: the block itself counts as one. */
export function confirmationsOf(blockNumber: number | null | undefined, head: number): number {
  if (blockNumber === null || blockNumber === undefined) return 0;
  return Math.max(0, head - blockNumber + 1);
}

/**
 * A payment is paid when the running sum of its transfers in chain order
 * reaches `amount` and the transfer that brought it there has
 * `requiredConfirmations` (earlier transfers then have at least as many).
 * That transfer's tx_hash is the payment's, as in the original 0xBTCpay.
 * `transfers` must be sorted by (blockNumber, logIndex).
 */
export function evaluatePayment({
  amount,
  transfers,
  head,
  requiredConfirmations,
}: {
  amount: bigint;
  transfers: readonly TransferForEvaluation[];
  head: number;
  requiredConfirmations: number;
}): Evaluation {
  let running = 0n;
  let completing: TransferForEvaluation | undefined;
  for (const transfer of transfers) {
    running += transfer.value;
    if (completing === undefined && running >= amount) completing = transfer;
  }
  const referenceBlock = completing?.blockNumber ?? transfers.at(-1)?.blockNumber;
  const confirmations = confirmationsOf(referenceBlock, head);
  return {
    paidAmount: running,
    completing,
    referenceBlock,
    confirmations,
    paid: completing !== undefined && confirmations >= requiredConfirmations,
  };
}
