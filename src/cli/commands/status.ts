import { Command } from "commander";
import { type Config, networksOf } from "../../config/index.ts";
import { errorMessage } from "../../internal/errors.ts";
import { PAYMENT_STATUSES } from "../../payments/index.ts";
import { openDatabase, schemaVersionOf } from "../../store/sqlite/index.ts";
import { heldLock } from "../../store/sqlite/lock.ts";
import { createOverview } from "../../store/sqlite/overview.ts";
import { createPaymentStore } from "../../store/sqlite/payments.ts";
import { type CursorRow, LEGACY_NETWORK } from "../../store/storage.ts";
import { ago, CONFIG_OPTION_HELP, configFrom, iso, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

/** `status --json`: snake_case like the JSON-RPC results; times in UNIX ms. */
export type StatusReport = {
  database: {
    path: string;
    schema_version: number;
    /**
     * The daemon holding the database (pid null: it is just starting); null
     * when none runs; `error` when the lock file could not be checked.
     */
    daemon: { pid: number | null; started_at: number | null } | { error: string } | null;
  };
  /** The single chain's stored scan cursor; null before the first start. Absent with `networks`. */
  scan?: ScanReport | null;
  /** With `networks`: each network's stored scan cursor (null before its first scan), in config order. */
  networks?: Record<string, ScanReport | null>;
  payments: Record<(typeof PAYMENT_STATUSES)[number], number>;
  postbacks: {
    pending: number;
    failed: number;
    oldest_undelivered_at: number | null;
    oldest_undelivered_age_seconds: number | null;
    last_error: {
      event_id: string;
      payment_id: string;
      attempted_at: number;
      status: number | null;
      error: string;
    } | null;
  };
};

/** Where a network's scan stands, as the daemon last stored it. */
export type ScanReport = {
  block_number: number;
  head: number;
  blocks_behind: number;
  /** When the daemon last wrote the cursor or the head. */
  updated_at: number;
  age_seconds: number;
};

function scanOf(cursor: CursorRow | undefined, now: number): ScanReport | null {
  return cursor
    ? {
        block_number: cursor.block_number,
        head: cursor.head_number,
        blocks_behind: Math.max(0, cursor.head_number - cursor.block_number),
        updated_at: cursor.updated_at,
        age_seconds: Math.max(0, Math.floor((now - cursor.updated_at) / 1000)),
      }
    : null;
}

function report(config: Config, now: number): StatusReport {
  const path = sqlitePathOf(config, "status");
  const db = openDatabase({ path, readonly: true });
  try {
    const overview = createOverview(db);
    const store = createPaymentStore(db);
    const scans =
      config.networks === undefined
        ? { scan: scanOf(store.getCursor(LEGACY_NETWORK), now) }
        : {
            networks: Object.fromEntries(
              networksOf(config).map(({ name }) => [name, scanOf(store.getCursor(name), now)]),
            ),
          };
    const queue = overview.postbackQueue();
    const lastError = overview.lastPostbackError();
    let daemon: StatusReport["database"]["daemon"];
    try {
      const lock = heldLock(path);
      daemon = lock
        ? { pid: lock.holder?.pid ?? null, started_at: lock.holder?.startedAt ?? null }
        : null;
    } catch (error) {
      daemon = { error: `cannot check the lock file: ${errorMessage(error)}` };
    }
    return {
      database: {
        path,
        schema_version: schemaVersionOf(db),
        daemon,
      },
      ...scans,
      payments: overview.paymentsByStatus(PAYMENT_STATUSES),
      postbacks: {
        pending: queue.pending,
        failed: queue.failed,
        oldest_undelivered_at: queue.oldestUndeliveredAt,
        oldest_undelivered_age_seconds:
          queue.oldestUndeliveredAt === null
            ? null
            : Math.max(0, Math.floor((now - queue.oldestUndeliveredAt) / 1000)),
        last_error: lastError
          ? {
              event_id: lastError.eventId,
              payment_id: lastError.paymentId,
              attempted_at: lastError.attemptedAt,
              status: lastError.status,
              error: lastError.error,
            }
          : null,
      },
    };
  } finally {
    db.close();
  }
}

/** A network's scan as one line of text. */
function scanLine(scan: ScanReport | null, now: number, notStarted: string): string {
  return scan === null
    ? notStarted
    : `block ${scan.block_number} of head ${scan.head}, ${scan.blocks_behind} behind; recorded ${ago(now - scan.updated_at)} ago (${iso(scan.updated_at)})`;
}

/** The report as aligned lines, one subject per line (one line per network). */
export function formatStatus(r: StatusReport, now: number): string {
  const daemon = r.database.daemon;
  const scans: string[][] =
    r.networks === undefined
      ? [
          [
            "scan",
            scanLine(
              r.scan ?? null,
              now,
              "not started: the daemon sets the cursor at its first start",
            ),
          ],
        ]
      : Object.entries(r.networks).map(([name, scan], index) => [
          index === 0 ? "scan" : "",
          `${name}: ${scanLine(scan, now, "not started: the daemon sets its cursor at its first scan")}`,
        ]);
  const lines = [
    ["database", `${r.database.path} (schema ${r.database.schema_version})`],
    [
      "daemon",
      daemon === null
        ? "not running"
        : "error" in daemon
          ? `unknown: ${daemon.error}`
          : daemon.pid === null
            ? "running"
            : `running, pid ${daemon.pid}, started ${iso(daemon.started_at ?? 0)}`,
    ],
    ...scans,
    [
      "payments",
      Object.entries(r.payments)
        .map(([status, count]) => `${status} ${count}`)
        .join(", "),
    ],
    [
      "postbacks",
      `${r.postbacks.pending} pending, ${r.postbacks.failed} failed${
        r.postbacks.oldest_undelivered_at === null
          ? ""
          : `; oldest undelivered ${ago(now - r.postbacks.oldest_undelivered_at)} old (${iso(r.postbacks.oldest_undelivered_at)})`
      }`,
    ],
    [
      "last error",
      r.postbacks.last_error === null
        ? "none"
        : `${iso(r.postbacks.last_error.attempted_at)} (${ago(now - r.postbacks.last_error.attempted_at)} ago) event ${r.postbacks.last_error.event_id} of payment ${r.postbacks.last_error.payment_id}: ${r.postbacks.last_error.error}`,
    ],
  ];
  return lines.map(([label, text]) => `${(label ?? "").padEnd(11)}${text}\n`).join("");
}

export function statusCommand(): Command {
  return new Command("status")
    .description(
      "Show the scan position (of each network), payments by status and the postback queue (read from the database; works while the daemon runs).",
    )
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .option("--json", "print one JSON object instead of lines")
    .addHelpText(
      "after",
      `
It reads the database only: no RPC call. "scan" is the cursor the daemon
stored (the last block fully recorded) and the head it saw then, with the
age of that record: an old one means the daemon is stopped or stuck. With
\`networks\` in the config, one line per network (in --json, "networks"
instead of "scan").

Examples:
  0xbtcpay status --config /etc/0xbtcpay/config.json
  0xbtcpay status --json | jq .scan.blocks_behind
  0xbtcpay status --json | jq .networks.polygon.blocks_behind`,
    )
    .action((options: { config?: string; json?: boolean }) => {
      const config = configFrom(options);
      const now = Date.now();
      let r: StatusReport;
      try {
        r = report(config, now);
      } catch (error) {
        exitOnError(error);
      }
      process.stdout.write(options.json ? `${JSON.stringify(r, null, 2)}\n` : formatStatus(r, now));
    });
}
