import { describe, expect, test } from "vitest";
import { confirmationsOf, evaluatePayment } from "../../src/payments/evaluate.ts";

const t = (txHash: string, blockNumber: number, value: bigint, logIndex = 0) => ({
  txHash,
  blockNumber,
  logIndex,
  value,
});

describe("evaluatePayment", () => {
  test("nothing received", async () => {
    expect(
      evaluatePayment({ amount: 10n, transfers: [], head: 100, requiredConfirmations: 3 }),
    ).toEqual({
      paidAmount: 0n,
      lateAmount: 0n,
      completing: undefined,
      paid: false,
      lateCompleting: undefined,
      paidLate: false,
      referenceBlock: undefined,
      confirmations: 0,
    });
  });

  test("the exact amount is paid once the block has the required confirmations", async () => {
    const transfers = [t("0xa", 98, 10n)];
    expect(
      evaluatePayment({ amount: 10n, transfers, head: 99, requiredConfirmations: 3 }).paid,
    ).toBe(false);
    const paid = evaluatePayment({ amount: 10n, transfers, head: 100, requiredConfirmations: 3 });
    expect(paid).toMatchObject({
      paid: true,
      confirmations: 3,
      completing: transfers[0],
      paidAmount: 10n,
    });
  });

  test("the transfer that brings the running sum to the amount is the completing one", async () => {
    const transfers = [
      t("0xa", 90, 4n),
      t("0xb", 91, 5n),
      t("0xc", 95, 1n, 0),
      t("0xd", 95, 7n, 1),
    ];
    const result = evaluatePayment({ amount: 10n, transfers, head: 200, requiredConfirmations: 3 });
    expect(result.completing?.txHash).toBe("0xc");
    expect(result.paidAmount).toBe(17n);
    expect(result.referenceBlock).toBe(95);
  });

  test("a partial payment counts confirmations from its latest transfer and is not paid", async () => {
    const result = evaluatePayment({
      amount: 10n,
      transfers: [t("0xa", 90, 4n), t("0xb", 95, 5n)],
      head: 200,
      requiredConfirmations: 3,
    });
    expect(result).toMatchObject({
      paid: false,
      paidAmount: 9n,
      referenceBlock: 95,
      confirmations: 106,
    });
  });

  test("confirmationsOf counts the block itself and never goes negative", async () => {
    expect(confirmationsOf(10, 10)).toBe(1);
    expect(confirmationsOf(10, 12)).toBe(3);
    expect(confirmationsOf(12, 10)).toBe(0);
    expect(confirmationsOf(null, 10)).toBe(0);
  });

  describe("deadline (block time decides)", () => {
    const expiresAt = 1_000_000 * 1000; // ms
    const at = (
      txHash: string,
      blockNumber: number,
      value: bigint,
      blockTimestamp: number | null,
    ) => ({
      txHash,
      blockNumber,
      logIndex: 0,
      value,
      blockTimestamp,
    });

    test("in-time funds complete the payment even if they confirm after the deadline", async () => {
      const result = evaluatePayment({
        amount: 10n,
        transfers: [at("0xa", 10, 10n, 999_999)],
        head: 12,
        requiredConfirmations: 3,
        expiresAt,
      });
      expect(result).toMatchObject({ paid: true, lateAmount: 0n, paidLate: false });
    });

    test("a transfer exactly at the deadline is in time; one second later is late", async () => {
      const onTime = evaluatePayment({
        amount: 10n,
        transfers: [at("0xa", 10, 10n, 1_000_000)],
        head: 20,
        requiredConfirmations: 3,
        expiresAt,
      });
      expect(onTime.paid).toBe(true);
      const late = evaluatePayment({
        amount: 10n,
        transfers: [at("0xa", 10, 10n, 1_000_001)],
        head: 20,
        requiredConfirmations: 3,
        expiresAt,
      });
      expect(late).toMatchObject({
        paid: false,
        paidLate: true,
        lateAmount: 10n,
        completing: undefined,
      });
      expect(late.lateCompleting?.txHash).toBe("0xa");
    });

    test("partial in time, rest late: paid late with the completing late transfer", async () => {
      const result = evaluatePayment({
        amount: 10n,
        transfers: [at("0xa", 10, 4n, 999_000), at("0xb", 20, 6n, 1_000_500)],
        head: 30,
        requiredConfirmations: 3,
        expiresAt,
      });
      expect(result).toMatchObject({
        paid: false,
        paidLate: true,
        paidAmount: 10n,
        lateAmount: 6n,
        referenceBlock: 20,
      });
    });

    test("an unknown block time (rows from before block times were kept) counts as in time", async () => {
      const result = evaluatePayment({
        amount: 10n,
        transfers: [at("0xa", 10, 10n, null)],
        head: 20,
        requiredConfirmations: 3,
        expiresAt,
      });
      expect(result.paid).toBe(true);
    });
  });
});
