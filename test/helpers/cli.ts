/**
 * The real `0xbtcpay` command line as a child process (compiled once per test
 * run, see ./build.ts): one-shot commands, and `serve` as a daemon the test
 * can signal, read the log of and wait for.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { built } from "./build.ts";
import { LOOPBACK_TARGETS, waitFor } from "./index.ts";

const run = promisify(execFile);
/** The compiled `0xbtcpay`: run it as `node CLI …args`. */
export const CLI = built("src/cli/index.js");

/**
 * Timeout for a test that runs several child processes: each starts slowly on
 * a loaded machine. A bound, not a measurement.
 */
export const CHILD_PROCESS_TIMEOUT_MS = 240_000;

export type CliResult = { code: number; stdout: string; stderr: string };

/** Runs `0xbtcpay ...args` to completion with a bare environment. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * `0xbtcpay serve --config configPath` as a bare child process (stderr piped,
 * unread): for tests that kill it at moments of their choosing.
 */
export function startServe(configPath: string): ChildProcess {
  return spawn(process.execPath, [CLI, "serve", "--config", configPath], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { PATH: process.env.PATH ?? "" },
  });
}

/** Resolves once `child` has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** Writes a daemon config (ports 0 on 127.0.0.1, the ops port too; info logs) to `dir`; returns its path. */
export function writeDaemonConfig(
  dir: string,
  {
    rpcUrl,
    token,
    dbPath,
    chain = {},
    postbacks = {},
    name = "config.json",
  }: {
    rpcUrl: string;
    token: string;
    /** A SQLite file, or a PostgreSQL database (`{ url }`). */
    dbPath: string | { url: string };
    chain?: Record<string, unknown>;
    postbacks?: Record<string, unknown>;
    name?: string;
  },
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      chain: { rpcUrl, chainId: 31337, token, confirmations: 1, pollIntervalMs: 50, ...chain },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 0 },
      public: { host: "127.0.0.1", port: 0 },
      // NOTE: not the default 9464: daemons of other test files (and of other
      // checkouts on the same machine) run at the same time.
      ops: { host: "127.0.0.1", port: 0 },
      postbacks: { allowTargets: LOOPBACK_TARGETS, ...postbacks },
      database: typeof dbPath === "string" ? { path: dbPath } : { url: dbPath.url },
      log: { level: "info" },
    }),
  );
  return path;
}

export type DaemonChild = {
  child: ChildProcess;
  privateUrl: string;
  publicUrl: string;
  /** Everything written to stderr so far. */
  log(): string;
  /** Resolves once a complete stderr line contains `text`. */
  waitForLog(text: string): Promise<string>;
  /** Resolves with the exit code (null if killed by a signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill9(): Promise<void>;
};

/**
 * `0xbtcpay serve --config configPath` as a child process; resolves once it
 * logs "daemon started". Register `stop` from the result for cleanup.
 */
export async function spawnDaemon(configPath: string): Promise<DaemonChild> {
  const child = spawn(process.execPath, [CLI, "serve", "--config", configPath], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let log = "";
  const waiters: Array<{ text: string; resolve(line: string): void }> = [];
  child.stderr?.on("data", (chunk) => {
    log += chunk;
    // Complete lines only: the last piece may be half a line.
    const lines = log.split("\n").slice(0, -1);
    for (const waiter of [...waiters]) {
      const line = lines.find((l) => l.includes(waiter.text));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const waitForLog = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const line = log
        .split("\n")
        .slice(0, -1)
        .find((l) => l.includes(text));
      if (line !== undefined) return resolve(line);
      waiters.push({ text, resolve });
      void exited.then(({ code }) =>
        reject(new Error(`daemon exited (${code}) before logging ${text}: ${log}`)),
      );
    });
  const started = JSON.parse(await waitForLog('"daemon started"')) as {
    private_url: string;
    public_url: string;
  };
  return {
    child,
    privateUrl: started.private_url,
    publicUrl: started.public_url,
    log: () => log,
    waitForLog,
    exited,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** config/dev.json with free ports and warn-level logs, written to `dir/name`; returns its path. */
export function writeDevConfig(dir: string, name = "dev.json"): string {
  const config = JSON.parse(readFileSync("config/dev.json", "utf8"));
  config.private.port = 0;
  config.public.port = 0;
  config.ops = { port: 0 };
  config.log.level = "warn";
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

export type DevChild = {
  child: ChildProcess;
  privateUrl: string;
  publicUrl: string;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** The exit code (null if killed by a signal) once the process has exited. */
  exit: Promise<number | null>;
};

/**
 * `0xbtcpay dev ...args` in `cwd` (where it keeps `.0xbtcpay-dev/`) as a
 * child process; resolves once it printed its URLs. Kill it in afterAll.
 */
export async function spawnDev(args: string[], cwd: string): Promise<DevChild> {
  let stdout = "";
  let stderr = "";
  const child = spawn(process.execPath, [CLI, "dev", ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const urls = await waitFor(
    () => {
      const privateUrl = /private JSON-RPC \(shop server\):\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(
        stdout,
      )?.[1];
      const publicUrl = /public status \(browsers\):\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(
        stdout,
      )?.[1];
      return privateUrl && publicUrl ? { privateUrl, publicUrl } : undefined;
    },
    { timeoutMs: 60_000, what: "the dev URLs" },
  ).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`${error}; stdout: ${stdout}; stderr: ${stderr}`);
  });
  return { child, ...urls, stdout: () => stdout, exit };
}

/** `0xbtcpay dev pay ...args` in `cwd`, run to completion. */
export function devPay(args: string[], cwd: string): Promise<CliResult> {
  return run(process.execPath, [CLI, "dev", "pay", ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "" },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: CliResult) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}
