/**
 * A throwaway PostgreSQL cluster for a test file: `initdb` in a temp folder,
 * `pg_ctl start` on 127.0.0.1 and a free port, durable settings (fsync and
 * synchronous_commit on, as the daemon's users run it), password
 * authentication over TCP, and everything removed by `remove()`. The
 * binaries are Debian's `postgresql` package (`.ci/run` installs it).
 *
 * PostgreSQL refuses to run as root: when the tests run as root, the
 * cluster belongs to the `postgres` system user that the package creates,
 * and its commands run through `runuser`.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

/** The newest installed server's bin folder (/usr/lib/postgresql/<major>/bin). */
export function postgresBin(): string {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "pg_ctl")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const major = majors[0];
  if (major === undefined) {
    throw new Error(
      "PostgreSQL is not installed: run .ci/run as root, or apt-get install postgresql",
    );
  }
  return join(root, major, "bin");
}

/** A loopback port nobody listens on right now (PostgreSQL cannot take port 0). */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

export type PostgresCluster = {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  adminUrl: string;
  port: number;
  password: string;
  /** The URL of database `name` on this cluster (see {@link PostgresCluster.createDatabase}). */
  urlOf(name: string): string;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** `pg_ctl stop -m fast`: the server closes every connection and exits. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server (if running) and deletes the cluster. */
  remove(): Promise<void>;
};

/**
 * Creates and starts a cluster; call `remove()` in afterAll. Share one per
 * test file (databases are cheap, clusters take a second or two).
 */
export async function startPostgres(): Promise<PostgresCluster> {
  const bin = postgresBin();
  const asRoot = process.getuid?.() === 0;
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    const { stdout: u } = await run("id", ["-u", "postgres"]);
    const { stdout: g } = await run("id", ["-g", "postgres"]);
    uid = Number(u.trim());
    gid = Number(g.trim());
  }
  /** Runs a PostgreSQL program as the cluster's owner. */
  const pgRun = (program: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bin, program), ...args], { timeout: 60_000 })
      : run(join(bin, program), args, { timeout: 60_000 });

  const dir = mkdtempSync(join(tmpdir(), "oxbtcpay-pg-"));
  if (asRoot) chownSync(dir, uid, gid);
  chmodSync(dir, 0o700);
  const data = join(dir, "data");
  const password = randomBytes(12).toString("hex");
  const pwfile = join(dir, "pwfile");
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) chownSync(pwfile, uid, gid);
  // NOTE: --no-sync only skips initdb's own fsync of the fresh files (a
  // throwaway cluster); the server itself runs with fsync and
  // synchronous_commit on (below).
  await pgRun("initdb", [
    "-D",
    data,
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    `--pwfile=${pwfile}`,
  ]);
  rmSync(pwfile);

  let port = 0;
  const startServer = async () => {
    await pgRun("pg_ctl", [
      "start",
      "-D",
      data,
      "-w",
      "-t",
      "60",
      "-l",
      join(dir, "server.log"),
      "-o",
      [
        "-c listen_addresses=127.0.0.1",
        `-c port=${port}`,
        `-c unix_socket_directories=${dir}`,
        "-c fsync=on",
        "-c synchronous_commit=on",
        "-c full_page_writes=on",
        "-c max_connections=200",
      ].join(" "),
    ]);
  };
  // Another process may take the port between the probe and the start: try again.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await startServer();
      break;
    } catch (error) {
      if (attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  const urlOf = (name: string) =>
    `postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(name)}`;
  let running = true;
  const stop = async () => {
    if (!running) return;
    await pgRun("pg_ctl", ["stop", "-D", data, "-m", "fast", "-w", "-t", "60"]);
    running = false;
  };
  return {
    adminUrl: urlOf("postgres"),
    port,
    password,
    urlOf,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: urlOf("postgres") });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
      } finally {
        await client.end();
      }
      return urlOf(name);
    },
    stop,
    async start() {
      if (running) return;
      await startServer();
      running = true;
    },
    async remove() {
      try {
        await stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
