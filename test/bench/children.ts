/**
 * Child processes of the bench: the daemon and the baseline servers, started
 * the same way (IPC channel for "ready" and "stop"), and what the bench reads
 * about them from /proc. A bench run from the TypeScript sources starts its
 * children through tsx; one compiled by `scripts/build.ts --bench` (what
 * test/project/bench-smoke.test.ts runs) starts their compiled JavaScript.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConfigInput } from "../../src/config/index.ts";
import type { BaselineChildMessage, BaselineSpec } from "./baseline-child.ts";
import type { DaemonChildMessage, DaemonMemory, PublicConnections } from "./daemon-child.ts";
import type { FloodChildMessage, FloodSpec, FloodStats } from "./flood-child.ts";
import type { SseClientsMessage, SseClientsRequest } from "./sse-clients-child.ts";

const COMPILED = import.meta.url.endsWith(".js");
const child = (name: string) =>
  fileURLToPath(new URL(`./${name}${COMPILED ? ".js" : ".ts"}`, import.meta.url));
const DAEMON_CHILD = child("daemon-child");
const BASELINE_CHILD = child("baseline-child");
const FLOOD_CHILD = child("flood-child");
const SSE_CLIENTS_CHILD = child("sse-clients-child");

export type Child = {
  pid: number;
  /** Asks the child to stop and waits for it to exit (kills it after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** kill -9: no shutdown at all (a crash); resolves once the child has exited. */
  kill(): Promise<void>;
};

/** Where --cpu-prof writes, when the bench runs with --profile DIR. */
export type ProfileOption = { dir: string; name: string } | undefined;

/** How much of a child's stderr the bench keeps when asked for only the end of it. */
const STDERR_TAIL_BYTES = 256 * 1024;

function spawnChild<T extends { type: string }>({
  script,
  env,
  profile,
  keepStderr = "all",
}: {
  script: string;
  env: Record<string, string>;
  profile?: ProfileOption;
  /**
   * "tail": only the last 256 KiB, so a phase that logs a line per request
   * (40 MB in 30 s) does not grow the bench process and add GC pauses to
   * the load generator's measurements.
   */
  keepStderr?: "all" | "tail";
}): Promise<{ child: ChildProcess; ready: T; stderr: () => string }> {
  const child = fork(script, [], {
    execArgv: [
      ...(COMPILED ? [] : ["--import", "tsx"]),
      ...(profile
        ? // One folder per child: tsx's loader thread writes a profile of its own.
          ["--cpu-prof", `--cpu-prof-dir=${join(profile.dir, profile.name)}`]
        : []),
    ],
    env: { ...process.env, ...env },
    // NOTE: stderr (the daemon's JSON logs) goes to a pipe read here, as it
    // goes to journald in production. A log file on the database's file
    // system would make every fsync of the database also flush the log.
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  const chunks: Buffer[] = [];
  let kept = 0;
  child.stderr?.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    kept += chunk.length;
    if (keepStderr === "tail") {
      while (kept - (chunks[0]?.length ?? 0) >= STDERR_TAIL_BYTES) {
        kept -= (chunks.shift() as Buffer).length;
      }
    }
  });
  const stderr = () => Buffer.concat(chunks).toString("utf8");
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(
        new Error(
          `${script} exited with code ${code} before it was ready: ${stderr().slice(-2000)}`,
        ),
      );
    child.once("exit", onExit);
    child.once("error", reject);
    child.on("message", (message: T | { type: "error"; message: string }) => {
      if (message.type === "error") {
        reject(new Error(`${script}: ${(message as { message: string }).message}`));
      } else if (message.type === "ready") {
        child.off("exit", onExit);
        resolve({ child, ready: message as T, stderr });
      }
    });
  });
}

function stopper(child: ChildProcess): (graceMs?: number) => Promise<void> {
  return (graceMs = 10_000) =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      if (child.connected) child.send({ type: "stop" });
      else child.kill("SIGTERM");
    });
}

function killer(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
}

export type DaemonChild = Child & {
  privateUrl: string;
  publicUrl: string;
  /** The ops listener (/metrics, /readyz); undefined with ops.enabled false. */
  opsUrl: string | undefined;
  /** Date.now() in the child just before it called startDaemon. */
  startingAt: number;
  /** The daemon's log so far (JSON lines). */
  logs(): string;
  /** The daemon's count of its public connections; `maxFromOne` among `addresses`. */
  connections(addresses: string[]): Promise<PublicConnections>;
  /** The daemon process's memory after a full garbage collection. */
  memory(): Promise<DaemonMemory>;
};

/** Starts the daemon in a child process with `config`, at its configured log level. */
export async function spawnDaemon({
  config,
  profile,
  keepLogs = "all",
}: {
  config: ConfigInput;
  profile?: ProfileOption;
  /** "tail": `logs()` returns only the end of the log (see spawnChild). */
  keepLogs?: "all" | "tail";
}): Promise<DaemonChild> {
  const { child, ready, stderr } = await spawnChild<Extract<DaemonChildMessage, { type: "ready" }>>(
    {
      script: DAEMON_CHILD,
      env: { BENCH_DAEMON_CONFIG: JSON.stringify(config) },
      profile,
      keepStderr: keepLogs,
    },
  );
  const waiting: Array<(connections: PublicConnections) => void> = [];
  child.on("message", (message: DaemonChildMessage) => {
    if (message.type === "connections") waiting.shift()?.(message.connections);
  });
  return {
    pid: child.pid as number,
    connections: (addresses) =>
      new Promise((resolve, reject) => {
        if (!child.connected) return reject(new Error("daemon child is gone"));
        waiting.push(resolve);
        child.send({ type: "connections", addresses });
      }),
    privateUrl: ready.privateUrl,
    publicUrl: ready.publicUrl,
    opsUrl: ready.opsUrl,
    startingAt: ready.startingAt,
    logs: stderr,
    memory: () =>
      new Promise((resolve, reject) => {
        const onExit = (code: number | null) =>
          reject(new Error(`the daemon exited with code ${code}: ${stderr().slice(-2000)}`));
        const onMessage = (message: DaemonChildMessage) => {
          if (message.type !== "memory") return;
          child.off("message", onMessage);
          child.off("exit", onExit);
          resolve(message.memory);
        };
        child.once("exit", onExit);
        child.on("message", onMessage);
        child.send({ type: "memory" });
      }),
    stop: stopper(child),
    kill: killer(child),
  };
}

/** Starts a baseline server (see baseline-child.ts) in a child process. */
export async function spawnBaseline(
  spec: BaselineSpec,
  profile?: ProfileOption,
): Promise<Child & { url: string }> {
  const { child, ready } = await spawnChild<BaselineChildMessage>({
    script: BASELINE_CHILD,
    env: { BENCH_BASELINE: JSON.stringify(spec) },
    profile,
  });
  return { pid: child.pid as number, url: ready.url, stop: stopper(child), kill: killer(child) };
}

/** Starts a flood of idle connections (see flood-child.ts) in a child process. */
export async function spawnFlooder(
  spec: FloodSpec,
): Promise<Child & { stats(): Promise<FloodStats> }> {
  const { child } = await spawnChild<Extract<FloodChildMessage, { type: "ready" }>>({
    script: FLOOD_CHILD,
    env: { BENCH_FLOOD: JSON.stringify(spec) },
  });
  const waiting: Array<(stats: FloodStats) => void> = [];
  child.on("message", (message: FloodChildMessage) => {
    if (message.type === "stats") waiting.shift()?.(message.stats);
  });
  return {
    pid: child.pid as number,
    stats: () =>
      new Promise((resolve, reject) => {
        if (!child.connected) return reject(new Error("flood child is gone"));
        waiting.push(resolve);
        child.send({ type: "stats" });
      }),
    stop: stopper(child),
    kill: killer(child),
  };
}

export type SseClientsChild = Child & {
  /** Sends `request` to the clients' process; resolves with its answer. */
  call<T>(request: SseClientsRequest): Promise<T>;
};

/** Starts the process that holds the SSE clients (see sse-clients-child.ts). */
export async function spawnSseClients(): Promise<SseClientsChild> {
  const { child } = await spawnChild<SseClientsMessage>({ script: SSE_CLIENTS_CHILD, env: {} });
  let seq = 0;
  const waiting = new Map<number, { resolve(result: unknown): void; reject(error: Error): void }>();
  child.on("message", (message: SseClientsMessage) => {
    if (message.type === "ready") return;
    const waiter = waiting.get(message.seq);
    waiting.delete(message.seq);
    if (message.type === "answer") waiter?.resolve(message.result);
    else waiter?.reject(new Error(`SSE clients: ${message.message}`));
  });
  child.once("exit", (code) => {
    for (const waiter of waiting.values()) {
      waiter.reject(new Error(`the SSE clients' process exited with code ${code}`));
    }
    waiting.clear();
  });
  return {
    pid: child.pid as number,
    call<T>(request: SseClientsRequest) {
      return new Promise<T>((resolve, reject) => {
        const id = ++seq;
        waiting.set(id, { resolve: resolve as (result: unknown) => void, reject });
        child.send({ seq: id, request });
      });
    },
    stop: stopper(child),
    kill: killer(child),
  };
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd). */
export function openFdsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident and peak resident memory of a process, in MB (VmRSS and VmHWM of /proc/<pid>/status). */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return ticks * 10; // USER_HZ is 100 on Linux
}
