/**
 * Error classes with a stable `code`. Retry decisions live in one place:
 * {@link shouldRetry}.
 */
export class BaseError extends Error {
  static code = "INTERNAL";
  readonly code: string;
  /** Whether doing the same thing again later may succeed. */
  readonly retryable: boolean;

  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = (new.target as typeof BaseError).code;
    this.retryable = options.retryable ?? false;
  }
}

/** The configuration is invalid; `issues` are "key: problem" lines. */
export class ConfigError extends BaseError {
  static override code = "CONFIG";
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid configuration:\n${issues.map((i) => `  - ${i}`).join("\n")}`);
    this.issues = issues;
  }
}

/** A key was given where a watch-only extended public key is required. */
export class KeyError extends BaseError {
  static override code = "KEY";
}

/** An RPC provider call failed (network, HTTP status, JSON-RPC error). */
export class ChainRpcError extends BaseError {
  static override code = "CHAIN_RPC";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, retryable: true });
  }
}

/** The provider serves another chain than the configured one: never retried. */
export class ChainMismatchError extends BaseError {
  static override code = "CHAIN_MISMATCH";
}

/**
 * The database has a migration newer than any this build ships: it was
 * written by a newer 0xbtcpay. Refused before anything is written to it.
 */
export class SchemaTooNewError extends BaseError {
  static override code = "SCHEMA_TOO_NEW";
  readonly version: number;
  readonly newest: number;
  constructor({ path, version, newest }: { path: string; version: number; newest: number }) {
    super(
      `database ${path} has schema version ${version}, newer than this 0xbtcpay knows (${newest}): upgrade 0xbtcpay`,
    );
    this.version = version;
    this.newest = newest;
  }
}

/**
 * A connection that does not migrate (a CLI command, a second connection)
 * found a schema older than this build's: only the daemon upgrades it.
 */
export class SchemaTooOldError extends BaseError {
  static override code = "SCHEMA_TOO_OLD";
  readonly version: number;
  readonly newest: number;
  constructor({ path, version, newest }: { path: string; version: number; newest: number }) {
    super(
      `database ${path} has schema version ${version}, older than this 0xbtcpay needs (${newest}): run \`0xbtcpay serve\` once to upgrade it`,
    );
    this.version = version;
    this.newest = newest;
  }
}

/** A connection that does not migrate was pointed at a file that does not exist; none is created. */
export class DatabaseMissingError extends BaseError {
  static override code = "DATABASE_MISSING";
  constructor({ path }: { path: string }) {
    super(
      `no database at ${path}: check database.path in the config, or run \`0xbtcpay serve\` once to create it`,
    );
  }
}

/** A backup or restore refused or failed (nothing was replaced). */
export class BackupError extends BaseError {
  static override code = "BACKUP";
}

/** Who holds a database's lock: what the holder wrote when it took it. */
export type LockHolder = { pid: number; command: string; startedAt: number };

/**
 * Another process (a running daemon, a restore) holds the database's lock:
 * one process at a time may own a database.
 */
export class DatabaseLockedError extends BaseError {
  static override code = "DATABASE_LOCKED";
  readonly holder: LockHolder | undefined;
  constructor({ path, holder }: { path: string; holder: LockHolder | undefined }) {
    const who =
      holder === undefined
        ? "another 0xbtcpay process"
        : `${holder.command === "restore" || holder.command === "migrate-db" ? `\`0xbtcpay ${holder.command}\`` : "a 0xbtcpay daemon"} (pid ${holder.pid}, started ${new Date(holder.startedAt).toISOString()})`;
    super(`database ${path} is in use by ${who}: stop it first`);
    this.holder = holder;
  }
}

/**
 * The anvil binary (npm package `@foundry-rs/anvil`, a devDependency) is not
 * installed: production installs leave it out, and only `dev` needs it.
 */
export class AnvilMissingError extends BaseError {
  static override code = "ANVIL_MISSING";
  constructor({ cause }: { cause?: unknown } = {}) {
    super(
      "the local chain needs the anvil binary from the npm package @foundry-rs/anvil, a development dependency that production installs leave out: run `npm ci` in a checkout of 0xbtcpay, or `npm install @foundry-rs/anvil` beside this one",
      { cause },
    );
  }
}

/** Decides whether an operation that threw `error` should be tried again. */
export function shouldRetry(error: unknown): boolean {
  if (error instanceof BaseError) return error.retryable;
  // Unknown errors from transports (sockets reset, timeouts) are retried; our
  // own programming errors surface in logs on every retry.
  return true;
}

/** The message of anything thrown, for logs and stored `last_error` columns. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0] ?? error.name;
  return String(error);
}
