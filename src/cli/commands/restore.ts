import { resolve } from "node:path";
import { Command } from "commander";
import { networksOf } from "../../config/index.ts";
import { DatabaseLockedError } from "../../internal/errors.ts";
import { restoreDatabase } from "../../store/sqlite/backup.ts";
import { CONFIG_OPTION_HELP, configFrom, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

export function restoreCommand(): Command {
  return new Command("restore")
    .description(
      "Replace the database with a backup (refused while a daemon runs on it); keeps the replaced one.",
    )
    .requiredOption("--from <file>", "the backup to restore (from `0xbtcpay backup`)")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .addHelpText(
      "after",
      `
Stop the daemon first: restore takes the same lock as \`serve\` and refuses
while one runs on the database. FILE must pass PRAGMA integrity_check, come
from this 0xbtcpay or an older one (\`serve\` upgrades it) and have been
written for the configured chain and token (with \`networks\`, each network's).
The replaced database is kept as <database.path>.before-restore-<time>. The
derivation counter never goes back: if the replaced database had handed out
more deposit addresses than the backup knows, the restored one continues
after them. Run it as the user the
daemon runs as (the restored file takes the replaced one's owner and mode
when it can).

Example (as the daemon's user, e.g. through sudo -u oxbtcpay):
  systemctl stop 0xbtcpay
  0xbtcpay restore --from /backups/0xbtcpay-2025-01-31.sqlite --config /etc/0xbtcpay/config.json
  systemctl start 0xbtcpay`,
    )
    .action(async (options: { from: string; config?: string }) => {
      const config = configFrom(options);
      const path = sqlitePathOf(config, "restore");
      const from = resolve(options.from);
      try {
        const result = await restoreDatabase({
          path,
          from,
          networks: networksOf(config),
          named: config.networks !== undefined,
        });
        const lines = [
          `restored ${path} from ${from} (schema version ${result.schemaVersion}, ${result.payments} payments)`,
        ];
        if (result.previous) lines.push(`the replaced database is kept as ${result.previous}`);
        if (result.counterRaised) {
          lines.push(
            `the replaced database had handed out deposit addresses up to index ${result.counterRaised.to - 1}, the backup only up to ${result.counterRaised.from - 1}: new payments continue at index ${result.counterRaised.to}; payments made after the backup are not in it (they are in the replaced database)`,
          );
        }
        process.stdout.write(`${lines.join("\n")}\n`);
      } catch (error) {
        if (error instanceof DatabaseLockedError) {
          exitOnError(new Error(`refusing to restore: ${error.message}`));
        }
        exitOnError(error);
      }
    });
}
