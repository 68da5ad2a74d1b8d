import { describe, expect, test } from "vitest";
import { confirmationsOf, evaluatePayment } from "../src/payments/evaluate.ts";

const t = (txHash: string, blockNumber: number, value: bigint, logIndex = 0) => ({
  txHash,
  blockNumber,
  logIndex,
  value,
});

describe("evaluatePayment", () => {
  test("nothing received", () => {
    expect(
      evaluatePayment({ amount: 10n, transfers: [], head: 100, requiredConfirmations: 3 }),
    ).toEqual({
      paidAmount: 0n,
      completing: undefined,
      referenceBlock: undefined,
      confirmations: 0,
      paid: false,
    });
  });

  test("the exact amount is paid once the block has the required confirmations", () => {
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

  test("the transfer that brings the running sum to the amount is the completing one", () => {
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

  test("a partial payment counts confirmations from its latest transfer and is not paid", () => {
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

  test("confirmationsOf counts the block itself and never goes negative", () => {
    expect(confirmationsOf(10, 10)).toBe(1);
    expect(confirmationsOf(10, 12)).toBe(3);
    expect(confirmationsOf(12, 10)).toBe(0);
    expect(confirmationsOf(null, 10)).toBe(0);
  });
});
