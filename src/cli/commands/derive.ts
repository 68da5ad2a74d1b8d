import { Command, InvalidArgumentError } from "commander";
import { createAddressDeriver, MAX_DERIVATION_INDEX } from "../../addresses/index.ts";
import { exitOnError } from "../run.ts";

function nonNegativeInt(value: string): number {
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) > MAX_DERIVATION_INDEX) {
    throw new InvalidArgumentError("expected a whole number from 0 to 2147483647");
  }
  return Number(value);
}

export function deriveCommand(): Command {
  return new Command("derive")
    .description(
      "Print deposit addresses of an xpub (index and address), to check them against your wallet.",
    )
    .option("--xpub <xpub>", "extended public key (default: $OXBTCPAY_XPUB)")
    .option("-n, --count <n>", "how many addresses", nonNegativeInt, 10)
    .option("-s, --start <index>", "first index", nonNegativeInt, 0)
    .addHelpText(
      "after",
      `
The xpub is the one at m/44'/60'/0'/0 (or your wallet's account path); its
child /i is the deposit address of payment number i.

Example:
  0xbtcpay derive --xpub xpub6D... --count 5`,
    )
    .action((options: { xpub?: string; count: number; start: number }) => {
      const xpub = options.xpub ?? process.env.OXBTCPAY_XPUB;
      if (!xpub) exitOnError(new Error("no xpub: pass --xpub or set OXBTCPAY_XPUB"));
      try {
        const deriver = createAddressDeriver({ xpub });
        const end = Math.min(options.start + options.count, MAX_DERIVATION_INDEX + 1);
        const lines: string[] = [];
        for (let i = options.start; i < end; i++) lines.push(`${i}\t${deriver.derive(i)}`);
        process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "");
      } catch (error) {
        exitOnError(error);
      }
    });
}
