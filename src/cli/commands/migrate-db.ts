import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { Command } from "commander";
import { DatabaseLockedError, errorMessage } from "../../internal/errors.ts";
import { type CopySummary, copySqliteToPostgres } from "../../store/postgres/copy.ts";
import {
  openPostgres,
  type PostgresDb,
  postgresSchemaVersion,
  redactUrl,
} from "../../store/postgres/index.ts";
import { openDatabase, schemaVersionOf } from "../../store/sqlite/index.ts";
import { lockDatabase } from "../../store/sqlite/lock.ts";
import { CONFIG_OPTION_HELP, configFrom, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

/** The environment variable that gives the target when `--to` is left out. */
export const DATABASE_URL_ENV = "OXBTCPAY_DATABASE_URL";

type Options = { from?: string; to?: string; config?: string };

/** The SQLite file: `--from`, else the config's database.path. */
function sourceOf(options: Options): string {
  if (options.from !== undefined) return resolve(options.from);
  if (options.config === undefined && !process.env.OXBTCPAY_CONFIG) {
    exitOnError(
      new Error("no SQLite database: pass --from FILE, or --config FILE to use its database.path"),
    );
  }
  // NOTE: $OXBTCPAY_DATABASE_URL names the target here, not the config's database.
  const config = configFrom(options, { ...process.env, OXBTCPAY_DATABASE_URL: undefined });
  return resolve(sqlitePathOf(config, "migrate-db --from"));
}

/** The PostgreSQL URL: `--to`, else $OXBTCPAY_DATABASE_URL; refused unless postgres(ql)://. */
function targetOf(options: Options): string {
  const url = options.to ?? process.env[DATABASE_URL_ENV];
  if (url === undefined || url === "") {
    exitOnError(new Error(`no PostgreSQL database: pass --to URL or set ${DATABASE_URL_ENV}`));
  }
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== "postgres:" && protocol !== "postgresql:") {
    // NOTE: the value itself is never repeated: it may hold a password.
    exitOnError(
      new Error(
        `--to: expected a URL like postgres://USER:PASSWORD@HOST:5432/DATABASE, got ${redactUrl(url)}`,
      ),
    );
  }
  return url;
}

/** A connection error's message: node's AggregateError (every address refused) has none of its own. */
function pgMessage(error: unknown): string {
  if (error instanceof AggregateError && error.message === "") {
    return error.errors.map((e) => errorMessage(e)).join("; ") || "connection failed";
  }
  return errorMessage(error);
}

const rowsOf = (n: number) => `${n} ${n === 1 ? "row" : "rows"}`;

/** The summary on stdout: rows per table, the amount sums, the counter. */
function summaryLines(summary: CopySummary): string[] {
  const lines: Array<[string, string]> = [
    ...Object.entries(summary.rows).map(([table, rows]): [string, string] => [table, rowsOf(rows)]),
    ["derivation counter", String(summary.derivationIndex)],
    ...Object.entries(summary.sums).map(([column, sum]): [string, string] => [
      `sum of ${column}`,
      `${sum} base units`,
    ]),
  ];
  const width = Math.max(...lines.map(([label]) => label.length));
  return lines.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`);
}

export function migrateDbCommand(): Command {
  return new Command("migrate-db")
    .description(
      "Copy a SQLite database into an empty PostgreSQL database and verify the copy (refused while a daemon runs on the SQLite file).",
    )
    .option("--from <file>", "the SQLite database to copy (default: database.path of --config)")
    .option("--to <url>", `the PostgreSQL database, postgres://… (default: $${DATABASE_URL_ENV})`)
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .addHelpText(
      "after",
      `
Stop the daemon first: migrate-db takes the same lock as \`serve\` on the
SQLite file and refuses while one runs on it (a daemon started during the
copy is refused too). The SQLite file is only read; its schema must be this
0xbtcpay's (run \`0xbtcpay serve\` once to upgrade an older one). The
PostgreSQL database must exist; its schema is created or brought up to
date, and a database that already holds payments, scan cursors, events or a
derivation counter above 0 is refused with nothing changed.

Everything the daemon stores is copied in one PostgreSQL transaction:
payments, transfers, recent block headers, the scan cursors, postback events
with their delivery state and attempts, and the derivation counter. It is
committed only if the row counts, the sums of every amount column and the
counter read back from PostgreSQL equal the SQLite file's. API keys, the
postback secret and the xpub live in the config, not in the database: keep
the config. Progress lines go to stderr, the verified summary to stdout.
The password of the URL is never printed.

Example:
  systemctl stop 0xbtcpay
  0xbtcpay migrate-db --from /var/lib/0xbtcpay/0xbtcpay.sqlite \\
    --to postgres://oxbtcpay:PASSWORD@127.0.0.1:5432/oxbtcpay
  ${DATABASE_URL_ENV}=postgres://… 0xbtcpay migrate-db --config /etc/0xbtcpay/config.json`,
    )
    .action(async (options: Options) => {
      const from = sourceOf(options);
      const url = targetOf(options);
      const name = redactUrl(url);
      if (!existsSync(from) || !statSync(from).isFile()) {
        exitOnError(new Error(`no SQLite database at ${from}`));
      }
      const progress = (line: string) => process.stderr.write(`migrate-db: ${line}\n`);

      let lock: ReturnType<typeof lockDatabase>;
      try {
        lock = lockDatabase({ path: from, command: "migrate-db" });
      } catch (error) {
        if (error instanceof DatabaseLockedError) {
          exitOnError(new Error(`refusing to migrate: ${error.message}`));
        }
        exitOnError(error);
      }
      let sqlite: ReturnType<typeof openDatabase> | undefined;
      let target: PostgresDb | undefined;
      let failure: unknown;
      try {
        sqlite = openDatabase({ path: from, readonly: true });
        progress(`reading ${from} (schema version ${schemaVersionOf(sqlite)})`);
        try {
          target = await openPostgres({ url, max: 1 });
        } catch (error) {
          throw new Error(`cannot open ${name}: ${pgMessage(error)}`, { cause: error });
        }
        progress(`${name}: schema version ${await postgresSchemaVersion(target.pool)}`);
        const summary = await copySqliteToPostgres({
          from: sqlite,
          to: target,
          onTable: (table, rows) => progress(`${table}: ${rowsOf(rows)} copied`),
        });
        progress("counts, amount sums and the derivation counter verified; committed");
        process.stdout.write(
          `${[`migrated ${from} to ${name}`, ...summaryLines(summary)].join("\n")}\n`,
        );
      } catch (error) {
        failure = error;
      } finally {
        await target?.close().catch(() => {});
        sqlite?.close();
        lock.release();
      }
      if (failure !== undefined) exitOnError(failure);
    });
}
