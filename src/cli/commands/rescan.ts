import { Command, InvalidArgumentError } from "commander";
import { networksOf } from "../../config/index.ts";
import { rescanFrom } from "../../payments/rescan.ts";
import { openDatabase } from "../../store/sqlite/index.ts";
import { createSqliteStorage } from "../../store/sqlite/storage.ts";
import { CONFIG_OPTION_HELP, configFrom, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

function blockNumber(value: string): number {
  if (!/^[0-9]{1,15}$/.test(value)) throw new InvalidArgumentError("expected a block number");
  return Number(value);
}

export function rescanCommand(): Command {
  return new Command("rescan")
    .description(
      "Move the scan (of one network) back so that blocks from N on are read again (works while the daemon runs).",
    )
    .requiredOption("--from-block <n>", "first block to read again", blockNumber)
    .option(
      "--network <name>",
      "the network whose scan moves (needed when the config has several; the others do not move)",
    )
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
With \`networks\` in the config, --network names the one to rescan (block
numbers are that network's); it may be left out only if there is one.

Examples:
  0xbtcpay rescan --from-block 19876543 --config /etc/0xbtcpay/config.json
  0xbtcpay rescan --network polygon --from-block 65432100 --config /etc/0xbtcpay/config.json
  0xbtcpay status --config /etc/0xbtcpay/config.json    # watch "scan" catch up`,
    )
    .action(async (options: { fromBlock: number; network?: string; config?: string }) => {
      const config = configFrom(options);
      const networks = networksOf(config);
      const names = networks.map((network) => network.name).join(", ");
      const network =
        options.network === undefined
          ? networks.length === 1
            ? networks[0]
            : exitOnError(
                new Error(`the config has several networks: give --network (one of ${names})`),
              )
          : networks.find((candidate) => candidate.name === options.network);
      if (!network) {
        exitOnError(new Error(`no network named "${options.network}" in the config (${names})`));
      }
      try {
        const db = openDatabase({ path: sqlitePathOf(config, "rescan"), migrate: false });
        let moved: Awaited<ReturnType<typeof rescanFrom>>;
        try {
          moved = await rescanFrom({
            storage: createSqliteStorage(db),
            network: network.name,
            chainId: network.chainId,
            token: network.token,
            startBlock: network.startBlock,
            fromBlock: options.fromBlock,
            now: Date.now(),
          });
        } finally {
          db.close();
        }
        const of = config.networks === undefined ? "" : ` of network ${network.name}`;
        process.stdout.write(
          moved.from === moved.to
            ? `rescan: nothing to move: the daemon reads block ${options.fromBlock}${of} next anyway\n`
            : `rescan: the scan cursor${of} moved from block ${moved.from} to block ${moved.to}: blocks ${options.fromBlock} to ${moved.from} are read again (at the running daemon's next poll, or at the next start)\n`,
        );
      } catch (error) {
        exitOnError(error);
      }
    });
}
