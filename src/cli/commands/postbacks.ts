import { Command, InvalidArgumentError } from "commander";
import { type Config, loadConfig } from "../../config/index.ts";
import { createOutbox } from "../../payments/outbox.ts";
import { type Db, openDatabase } from "../../store/sqlite/index.ts";
import { createSqliteStorage } from "../../store/sqlite/storage.ts";
import { EVENT_STATES, type EventRow, type EventState } from "../../store/storage.ts";
import { sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

function state(value: string): EventState {
  if (!(EVENT_STATES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${EVENT_STATES.join(", ")}`);
  }
  return value as EventState;
}

function configFrom(options: { config?: string }): Config {
  const path = options.config ?? process.env.OXBTCPAY_CONFIG;
  if (!path) exitOnError(new Error("no config file: pass --config FILE or set OXBTCPAY_CONFIG"));
  try {
    return loadConfig({ path, env: process.env });
  } catch (error) {
    exitOnError(error);
  }
}

/**
 * Opens the daemon's database without migrating: a command never creates the
 * file or changes its schema (the daemon owns upgrades, and may be running on
 * it), and refuses one that is missing or not at this build's schema version.
 */
function openExisting(config: Config): Db {
  return openDatabase({ path: sqlitePathOf(config, "postbacks"), migrate: false });
}

const iso = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());

const COLUMNS = [
  "event_id",
  "payment_id",
  "event",
  "state",
  "attempts",
  "last_status",
  "next_attempt_at",
  "delivered_at",
  "last_error",
];

function line(event: EventRow): string {
  return [
    event.id,
    event.payment_id,
    event.type,
    event.state,
    String(event.attempts),
    event.last_status === null ? "-" : String(event.last_status),
    event.state === "pending" ? iso(event.next_attempt_at) : "-",
    iso(event.delivered_at),
    event.last_error ?? "-",
  ].join("\t");
}

export function postbacksCommand(): Command {
  const postbacks = new Command("postbacks").description(
    "Inspect and redeliver postbacks (works while the daemon runs).",
  );
  postbacks
    .command("list")
    .description("List postback events, oldest first, as tab-separated columns.")
    .option("-c, --config <file>", "JSON config file (default: $OXBTCPAY_CONFIG)")
    .option("--state <state>", "only events in this state: pending, delivered or failed", state)
    .addHelpText(
      "after",
      `
Columns: ${COLUMNS.join(", ")}.

Example:
  0xbtcpay postbacks list --state failed --config /etc/0xbtcpay/config.json`,
    )
    .action(async (options: { config?: string; state?: EventState }) => {
      const config = configFrom(options);
      try {
        const db = openExisting(config);
        const outbox = createOutbox({
          storage: createSqliteStorage(db),
          showNetworks: config.networks !== undefined,
        });
        const rows = await outbox.list(options.state);
        db.close();
        process.stdout.write(`${[COLUMNS.join("\t"), ...rows.map(line)].join("\n")}\n`);
      } catch (error) {
        exitOnError(error);
      }
    });
  postbacks
    .command("retry")
    .description(
      "Send a postback again: one event (event id) or all of a payment's events (payment id). Keeps the webhook-id.",
    )
    .argument("<id>", "event id (evt_…) or payment id (16 hex characters)")
    .option("-c, --config <file>", "JSON config file (default: $OXBTCPAY_CONFIG)")
    .addHelpText(
      "after",
      `
The event goes back to pending, due now, with a fresh retry schedule. A
running daemon sends it within a second; otherwise it goes at the next start.

Example:
  0xbtcpay postbacks retry evt_3f2a… --config /etc/0xbtcpay/config.json`,
    )
    .action(async (id: string, options: { config?: string }) => {
      const config = configFrom(options);
      let requeued: string[];
      try {
        const db = openExisting(config);
        const outbox = createOutbox({
          storage: createSqliteStorage(db),
          showNetworks: config.networks !== undefined,
        });
        requeued = await outbox.requeue(id, Date.now());
        db.close();
      } catch (error) {
        exitOnError(error);
      }
      if (requeued.length === 0)
        exitOnError(new Error(`no postback event or payment with id ${id}`));
      process.stdout.write(requeued.map((eventId) => `requeued\t${eventId}\n`).join(""));
    });
  return postbacks;
}
