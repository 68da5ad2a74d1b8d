/**
 * What the operator's commands share: the config they read `database.path`
 * (and the chain) from, and how they show times.
 */
import { type Config, loadConfig } from "../config/index.ts";
import { exitOnError } from "./run.ts";

export const CONFIG_OPTION_HELP = "JSON config file (default: $OXBTCPAY_CONFIG)";

/** Loads `--config` (or $OXBTCPAY_CONFIG); prints the problems and exits 1 if it is invalid. */
export function configFrom(
  options: { config?: string },
  env: Record<string, string | undefined> = process.env,
): Config {
  const path = options.config ?? process.env.OXBTCPAY_CONFIG;
  if (!path) exitOnError(new Error("no config file: pass --config FILE or set OXBTCPAY_CONFIG"));
  try {
    return loadConfig({ path, env });
  } catch (error) {
    exitOnError(error);
  }
}

/** A duration in ms as an operator reads it: "45 s", "12 min", "3 h", "2 d". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172_800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

export const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The SQLite file of a config, for the commands that work on one
 * (backup, restore, status, doctor, dev); with `database.url` they print
 * what to do instead and exit 1.
 */
export function sqlitePathOf(config: Config, command: string): string {
  const path = config.database.path;
  if (path === undefined) {
    exitOnError(
      new Error(
        `\`0xbtcpay ${command}\` works on a SQLite database (database.path); this config uses PostgreSQL (database.url): use PostgreSQL's own tools (pg_dump, pg_restore, psql) and each replica's /readyz and /metrics`,
      ),
    );
  }
  return path;
}
