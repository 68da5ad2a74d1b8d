import { Command, InvalidArgumentError } from "commander";
import { rescanFrom } from "../../payments/rescan.ts";
import { openDatabase } from "../../store/index.ts";
import { CONFIG_OPTION_HELP, configFrom } from "../options.ts";
import { exitOnError } from "../run.ts";

function blockNumber(value: string): number {
  if (!/^[0-9]{1,15}$/.test(value)) throw new InvalidArgumentError("expected a block number");
  return Number(value);
}

export function rescanCommand(): Command {
  return new Command("rescan")
    .description(
      "Move the scan back so that blocks from N on are read again (works while the daemon runs).",
    )
    .requiredOption("--from-block <n>", "first block to read again", blockNumber)
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .addHelpText(
      "after",
      `
It only moves the stored scan cursor to block N-1. A running daemon reads it
again before its next batch (within chain.pollIntervalMs) and scans from
block N; a stopped one does at its next start. Nothing is deleted: transfers
already recorded are ignored when read again (keyed by transaction hash and
log index), so their payments do not change and no postback is sent again; a
transfer that is missing (a provider that dropped a log, a row deleted by
hand) is recorded and its payment re-decided, as on the first scan. N may not
be above the next block the daemon would read, nor below chain.startBlock.

Examples:
  0xbtcpay rescan --from-block 19876543 --config /etc/0xbtcpay/config.json
  0xbtcpay status --config /etc/0xbtcpay/config.json    # watch "scan" catch up`,
    )
    .action((options: { fromBlock: number; config?: string }) => {
      const config = configFrom(options);
      try {
        const db = openDatabase({ path: config.database.path, migrate: false });
        let moved: ReturnType<typeof rescanFrom>;
        try {
          moved = rescanFrom({
            db,
            chainId: config.chain.chainId,
            token: config.chain.token,
            startBlock: config.chain.startBlock,
            fromBlock: options.fromBlock,
            now: Date.now(),
          });
        } finally {
          db.close();
        }
        process.stdout.write(
          moved.from === moved.to
            ? `rescan: nothing to move: the daemon reads block ${options.fromBlock} next anyway\n`
            : `rescan: the scan cursor moved from block ${moved.from} to block ${moved.to}: blocks ${options.fromBlock} to ${moved.from} are read again (at the running daemon's next poll, or at the next start)\n`,
        );
      } catch (error) {
        exitOnError(error);
      }
    });
}
