import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname } from "node:path";
import { Command } from "commander";
import { erc20Abi, type Hex } from "viem";
import { createAddressDeriver, createFastAddressDeriver } from "../../addresses/index.ts";
import { type ChainClient, createChainClient } from "../../chain/client.ts";
import { type Config, loadConfig } from "../../config/index.ts";
import { ConfigError, errorMessage } from "../../internal/errors.ts";
import { newestSchemaVersion, openDatabase, schemaVersionOf } from "../../store/index.ts";
import { heldLock } from "../../store/lock.ts";
import { createPaymentStore } from "../../store/payments.ts";
import { CONFIG_OPTION_HELP } from "../options.ts";
import { exitOnError } from "../run.ts";

/** How long each RPC call of the checks may take. */
const RPC_TIMEOUT_MS = 5_000;

type Check = { ok: boolean; name: string; detail: string };

const ok = (name: string, detail: string): Check => ({ ok: true, name, detail });
const fail = (name: string, detail: string): Check => ({ ok: false, name, detail });

/** One line per check: "ok  " or "FAIL", the check's name, what was found. */
export function formatCheck(check: Check): string {
  return `${check.ok ? "ok  " : "FAIL"}  ${check.name.padEnd(13)}${check.detail}\n`;
}

/** The RPC URL without what may be a secret (an API key in the path or query). */
function shownUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
}

/**
 * The error's message, with what its innermost cause says: the system error
 * code (ECONNREFUSED, ETIMEDOUT) or the last message ("bad port").
 */
function withRootCause(error: unknown): string {
  const message = errorMessage(error).replace(/\.$/, "");
  let root = "";
  for (let e: unknown = error; e !== null && typeof e === "object"; e = (e as Error).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return `${message} (${code})`;
    if (e instanceof Error) root = errorMessage(e);
  }
  return root && root !== errorMessage(error) ? `${message} (${root})` : message;
}

async function checkRpc(config: Config, client: ChainClient): Promise<Check[]> {
  const where = shownUrl(config.chain.rpcUrl);
  let head: number;
  try {
    head = await client.blockNumber();
  } catch (error) {
    const skipped = "not checked: the RPC endpoint did not answer";
    return [
      fail("rpc", `${where} did not answer: ${withRootCause(error)}`),
      fail("chain id", skipped),
      fail("token", skipped),
    ];
  }
  const checks = [ok("rpc", `${where} answers, head block ${head}`)];
  const chainId = await client.chainId().catch(() => undefined);
  if (chainId === config.chain.chainId) {
    checks.push(ok("chain id", `${chainId}, as configured`));
  } else {
    checks.push(
      fail(
        "chain id",
        chainId === undefined
          ? "eth_chainId failed"
          : `the RPC endpoint serves chain ${chainId}, the config says chain.chainId ${config.chain.chainId}`,
      ),
    );
    return [...checks, fail("token", "not checked: wrong chain")];
  }
  checks.push(await checkToken(config, client));
  return checks;
}

async function checkToken(config: Config, client: ChainClient): Promise<Check> {
  const address = config.chain.token as Hex;
  const code = await client.viem.getCode({ address }).catch(() => undefined);
  if (code === undefined || code === "0x") {
    return fail("token", `no contract at ${address} on chain ${config.chain.chainId}`);
  }
  let decimals: number;
  let symbol: string;
  try {
    [decimals, symbol] = await Promise.all([
      client.viem.readContract({ address, abi: erc20Abi, functionName: "decimals" }),
      client.viem.readContract({ address, abi: erc20Abi, functionName: "symbol" }),
    ]);
  } catch (error) {
    const message = (error as { shortMessage?: string }).shortMessage ?? errorMessage(error);
    return fail("token", `${address} does not answer decimals()/symbol(): ${message}`);
  }
  const problems = [
    decimals === config.chain.decimals
      ? undefined
      : `decimals() is ${decimals}, the config says chain.decimals ${config.chain.decimals}`,
    symbol === config.chain.symbol
      ? undefined
      : `symbol() is ${JSON.stringify(symbol)}, the config says chain.symbol ${JSON.stringify(config.chain.symbol)}`,
  ].filter((problem) => problem !== undefined);
  if (problems.length > 0) return fail("token", `${address}: ${problems.join("; ")}`);
  return ok(
    "token",
    `${address} answers decimals() ${decimals} and symbol() ${JSON.stringify(symbol)}, as configured`,
  );
}

function checkXpub(config: Config): Check {
  try {
    const fast = createFastAddressDeriver({ xpub: config.wallet.xpub });
    const reference = createAddressDeriver({ xpub: config.wallet.xpub });
    const addresses = [0, 1].map((index) => fast.derive(index));
    if (addresses.some((address, index) => address !== reference.derive(index))) {
      return fail("xpub", "the daemon's deriver and the reference one disagree: report this bug");
    }
    return ok("xpub", `derives index 0 ${addresses[0]}, index 1 ${addresses[1]}`);
  } catch (error) {
    return fail("xpub", errorMessage(error));
  }
}

/** Binds `host:port` exclusively and releases it at once. */
function tryBind(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

const BIND_ERRORS: Record<string, string> = {
  EADDRINUSE: "is in use",
  EACCES: "cannot be bound: permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "cannot be bound: the host is not an address of this machine",
};

async function checkPorts(config: Config, daemonPid: number | undefined): Promise<Check[]> {
  const ports = [
    { name: "private port", host: config.private.host, port: config.private.port },
    { name: "public port", host: config.public.host, port: config.public.port },
  ];
  const checks: Check[] = [];
  for (const { name, host, port } of ports) {
    const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    if (port === 0) {
      checks.push(ok(name, `${where}: the system picks a free port`));
      continue;
    }
    const error = await tryBind(host, port);
    if (error === undefined) {
      checks.push(ok(name, `${where} is free`));
      continue;
    }
    const running =
      error === "EADDRINUSE" && daemonPid !== undefined
        ? ` (the daemon that runs on this database, pid ${daemonPid}, may be the one holding it)`
        : "";
    checks.push(
      fail(name, `${where} ${BIND_ERRORS[error] ?? `cannot be bound: ${error}`}${running}`),
    );
  }
  const [priv, pub] = ports;
  if (priv && pub && priv.port !== 0 && priv.port === pub.port && priv.host === pub.host) {
    checks.push(fail("ports", "private and public ports are the same"));
  }
  return checks;
}

function checkDatabase(config: Config, daemonPid: number | undefined): Check {
  const path = config.database.path;
  const newest = newestSchemaVersion();
  if (!existsSync(path)) {
    if (!existsSync(dirname(path))) {
      return fail("database", `${path}: its directory ${dirname(path)} does not exist`);
    }
    return ok(
      "database",
      `${path} does not exist yet: \`serve\` creates it (schema version ${newest})`,
    );
  }
  let version: number;
  let cursor: ReturnType<ReturnType<typeof createPaymentStore>["getCursor"]>;
  try {
    // NOTE: read-only, and no schema guard: doctor reports the version
    // instead of refusing it, and writes nothing.
    const db = openDatabase({ path, readonly: true, allowOlder: true });
    try {
      version = schemaVersionOf(db);
      cursor = version > 0 ? createPaymentStore(db).getCursor() : undefined;
    } finally {
      db.close();
    }
  } catch (error) {
    return fail("database", `${path} cannot be opened: ${errorMessage(error)}`);
  }
  if (version === 0) return fail("database", `${path} is not a 0xbtcpay database`);
  if (cursor && (cursor.chain_id !== config.chain.chainId || cursor.token !== config.chain.token)) {
    return fail(
      "database",
      `${path} was written for chain ${cursor.chain_id} token ${cursor.token}, the config says chain ${config.chain.chainId} token ${config.chain.token}: use a new database.path`,
    );
  }
  const running = daemonPid === undefined ? "" : `; a daemon runs on it (pid ${daemonPid})`;
  const schema =
    version === newest
      ? `schema version ${version}, this build's`
      : `schema version ${version}, this build's is ${newest}: \`serve\` upgrades it`;
  return ok("database", `${path} opens: ${schema}${running}`);
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description(
      "Check a config without starting anything: config, RPC, chain id, token, xpub, ports, database.",
    )
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .addHelpText(
      "after",
      `
One line per check, "ok" or "FAIL"; exit code 1 if any check fails. It binds
each configured port for an instant (so run it before starting the daemon,
or expect the ports to be in use), opens the database read-only, and makes
read-only RPC calls (eth_blockNumber, eth_chainId, eth_getCode and the
token's decimals() and symbol()).

Example:
  0xbtcpay doctor --config /etc/0xbtcpay/config.json`,
    )
    .action(async (options: { config?: string }) => {
      const path = options.config ?? process.env.OXBTCPAY_CONFIG;
      if (!path)
        exitOnError(new Error("no config file: pass --config FILE or set OXBTCPAY_CONFIG"));
      let config: Config;
      try {
        config = loadConfig({ path, env: process.env });
      } catch (error) {
        const lines =
          error instanceof ConfigError
            ? [`${path} is invalid:`, ...error.issues.map((issue) => `  - ${issue}`)]
            : [errorMessage(error)];
        process.stdout.write(
          [
            formatCheck(fail("config", lines[0] ?? "")),
            ...lines.slice(1).map((l) => `${" ".repeat(19)}${l}\n`),
          ].join(""),
        );
        process.exit(1);
      }
      const checks: Check[] = [ok("config", `${path} is valid`)];
      const client = createChainClient({ rpcUrl: config.chain.rpcUrl, timeoutMs: RPC_TIMEOUT_MS });
      checks.push(...(await checkRpc(config, client)));
      checks.push(checkXpub(config));
      const daemonPid = heldLock(config.database.path)?.holder?.pid;
      checks.push(...(await checkPorts(config, daemonPid)));
      checks.push(checkDatabase(config, daemonPid));
      process.stdout.write(checks.map(formatCheck).join(""));
      process.exit(checks.every((check) => check.ok) ? 0 : 1);
    });
}
