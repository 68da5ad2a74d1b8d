import { resolve } from "node:path";
import { Command } from "commander";
import { backupDatabase } from "../../store/sqlite/backup.ts";
import { CONFIG_OPTION_HELP, configFrom, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

/** Databases of at least this many pages (100 MiB at 4 KiB) get progress lines on stderr. */
export const PROGRESS_FROM_PAGES = 25_600;

export function backupCommand(): Command {
  return new Command("backup")
    .description(
      "Copy the database to FILE while the daemon runs (SQLite's online backup, integrity-checked).",
    )
    .requiredOption("--to <file>", "where to write the backup")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .option("--force", "replace FILE if it exists")
    .addHelpText(
      "after",
      `
The copy is a snapshot of one moment: every payment acknowledged before the
command started is in it; the daemon keeps taking payments meanwhile. It is
written beside FILE, checked with PRAGMA integrity_check, fsynced and renamed
to FILE only when complete, so FILE is never a half-written backup. FILE is a
single SQLite file (no -wal beside it). An existing FILE is refused unless
--force.

Examples:
  0xbtcpay backup --to /backups/0xbtcpay-$(date +%F).sqlite --config /etc/0xbtcpay/config.json
  0xbtcpay backup --to /backups/latest.sqlite --force`,
    )
    .action(async (options: { to: string; config?: string; force?: boolean }) => {
      const config = configFrom(options);
      const to = resolve(options.to);
      let shown = -1;
      try {
        const result = await backupDatabase({
          path: sqlitePathOf(config, "backup"),
          to,
          force: options.force === true,
          onProgress(copied, total) {
            if (total < PROGRESS_FROM_PAGES) return;
            const percent = Math.floor((copied * 100) / total / 10) * 10;
            if (percent === shown) return;
            shown = percent;
            process.stderr.write(`backup: ${percent}% (${copied} of ${total} pages)\n`);
          },
        });
        process.stdout.write(
          `backup: ${to} (schema version ${result.schemaVersion}, ${result.payments} payments, ${result.bytes} bytes)\n`,
        );
      } catch (error) {
        exitOnError(error);
      }
    });
}
