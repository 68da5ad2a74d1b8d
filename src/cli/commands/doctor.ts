import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname } from "node:path";
import { Command } from "commander";
import { erc20Abi, type Hex } from "viem";
import { createAddressDeriver, createFastAddressDeriver } from "../../addresses/index.ts";
import { type ChainClient, createChainClient } from "../../chain/client.ts";
import { type Config, loadConfig, type NetworkConfig, networksOf } from "../../config/index.ts";
import { ConfigError, errorMessage } from "../../internal/errors.ts";
import { newestSchemaVersion, openDatabase, schemaVersionOf } from "../../store/sqlite/index.ts";
import { heldLock } from "../../store/sqlite/lock.ts";
import { createPaymentStore } from "../../store/sqlite/payments.ts";
import { type CursorRow, LEGACY_NETWORK } from "../../store/storage.ts";
import { CONFIG_OPTION_HELP, sqlitePathOf } from "../options.ts";
import { exitOnError } from "../run.ts";

/** How long each RPC call of the checks may take. */
const RPC_TIMEOUT_MS = 5_000;

type Check = { ok: boolean; name: string; detail: string };

const ok = (name: string, detail: string): Check => ({ ok: true, name, detail });
const fail = (name: string, detail: string): Check => ({ ok: false, name, detail });

/** One line per check: "ok  " or "FAIL", the check's name (padded to `width`), what was found. */
export function formatCheck(check: Check, width = 13): string {
  return `${check.ok ? "ok  " : "FAIL"}  ${check.name.padEnd(width)}${check.detail}\n`;
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

/**
 * The RPC, chain id and token checks of one network; with `prefix` (a
 * config with `networks`) their names start with the network's name.
 */
async function checkRpc(
  network: NetworkConfig,
  client: ChainClient,
  prefix: string,
): Promise<Check[]> {
  const name = (check: string) => `${prefix}${check}`;
  const where = shownUrl(network.rpcUrl);
  let head: number;
  try {
    head = await client.blockNumber();
  } catch (error) {
    const skipped = "not checked: the RPC endpoint did not answer";
    return [
      fail(name("rpc"), `${where} did not answer: ${withRootCause(error)}`),
      fail(name("chain id"), skipped),
      fail(name("token"), skipped),
    ];
  }
  const checks = [ok(name("rpc"), `${where} answers, head block ${head}`)];
  const chainId = await client.chainId().catch(() => undefined);
  if (chainId === network.chainId) {
    checks.push(ok(name("chain id"), `${chainId}, as configured`));
  } else {
    checks.push(
      fail(
        name("chain id"),
        chainId === undefined
          ? "eth_chainId failed"
          : `the RPC endpoint serves chain ${chainId}, the config says ${network.key}.chainId ${network.chainId}`,
      ),
    );
    return [...checks, fail(name("token"), "not checked: wrong chain")];
  }
  checks.push({ ...(await checkToken(network, client)), name: name("token") });
  return checks;
}

async function checkToken(network: NetworkConfig, client: ChainClient): Promise<Check> {
  const address = network.token as Hex;
  const code = await client.viem.getCode({ address }).catch(() => undefined);
  if (code === undefined || code === "0x") {
    return fail("token", `no contract at ${address} on chain ${network.chainId}`);
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
    decimals === network.decimals
      ? undefined
      : `decimals() is ${decimals}, the config says ${network.key}.decimals ${network.decimals}`,
    symbol === network.symbol
      ? undefined
      : `symbol() is ${JSON.stringify(symbol)}, the config says ${network.key}.symbol ${JSON.stringify(network.symbol)}`,
  ].filter((problem) => problem !== undefined);
  if (problems.length > 0) return fail("token", `${address}: ${problems.join("; ")}`);
  return ok(
    "token",
    `${address} answers decimals() ${decimals} and symbol() ${JSON.stringify(symbol)}, as configured`,
  );
}

/** The cursors stored in `db` (one unnamed row, the single chain's, before migration 0007). */
function storedCursors(
  db: ReturnType<typeof openDatabase>,
  version: number,
): Array<Pick<CursorRow, "network" | "chain_id" | "token">> {
  if (version >= 7) return createPaymentStore(db).cursors();
  const row = db.prepare("SELECT chain_id, token FROM chain_cursor WHERE id = 1").get() as
    | { chain_id: number; token: string }
    | undefined;
  return row ? [{ network: LEGACY_NETWORK, ...row }] : [];
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
  const path = sqlitePathOf(config, "doctor");
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
  let cursors: Array<Pick<CursorRow, "network" | "chain_id" | "token">>;
  try {
    // NOTE: read-only, and no schema guard: doctor reports the version
    // instead of refusing it, and writes nothing.
    const db = openDatabase({ path, readonly: true, allowOlder: true });
    try {
      version = schemaVersionOf(db);
      cursors = version > 0 ? storedCursors(db, version) : [];
    } finally {
      db.close();
    }
  } catch (error) {
    return fail("database", `${path} cannot be opened: ${errorMessage(error)}`);
  }
  if (version === 0) return fail("database", `${path} is not a 0xbtcpay database`);
  for (const network of networksOf(config)) {
    const cursor = cursors.find((row) => row.network === network.name);
    const named = config.networks === undefined ? "" : ` (network ${network.name})`;
    if (cursor && (cursor.chain_id !== network.chainId || cursor.token !== network.token)) {
      return fail(
        "database",
        `${path} was written for chain ${cursor.chain_id} token ${cursor.token}${named}, the config says chain ${network.chainId} token ${network.token}: use a new database.path`,
      );
    }
    const renamed = cursors.find(
      (row) => row.network !== network.name && row.chain_id === network.chainId,
    );
    if (!cursor && renamed) {
      return fail(
        "database",
        `${path} scanned chain ${network.chainId} as network "${renamed.network}", the config calls it "${network.name}": name it "${renamed.network}" again`,
      );
    }
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
      "Check a config without starting anything: config, RPC, chain id, token (of each network), xpub, ports, database.",
    )
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .addHelpText(
      "after",
      `
One line per check, "ok" or "FAIL"; exit code 1 if any check fails. It binds
each configured port for an instant (so run it before starting the daemon,
or expect the ports to be in use), opens the database read-only, and makes
read-only RPC calls (eth_blockNumber, eth_chainId, eth_getCode and the
token's decimals() and symbol()). With \`networks\` in the config, the RPC,
chain id and token checks run for each network, named after it.

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
      // With `networks`, each network's checks, named after it ("polygon rpc").
      const perNetwork = await Promise.all(
        networksOf(config).map((network) =>
          checkRpc(
            network,
            createChainClient({ rpcUrl: network.rpcUrl, timeoutMs: RPC_TIMEOUT_MS }),
            config.networks === undefined ? "" : `${network.name} `,
          ),
        ),
      );
      checks.push(...perNetwork.flat());
      checks.push(checkXpub(config));
      const daemonPid = heldLock(sqlitePathOf(config, "doctor"))?.holder?.pid;
      checks.push(...(await checkPorts(config, daemonPid)));
      checks.push(checkDatabase(config, daemonPid));
      const width = Math.max(13, ...checks.map((check) => check.name.length + 1));
      process.stdout.write(checks.map((check) => formatCheck(check, width)).join(""));
      process.exit(checks.every((check) => check.ok) ? 0 : 1);
    });
}
