/**
 * public_flood: the private port's start_payment rate while 20,000 idle
 * connections are held against the public port, as a ratio to its rate
 * without them (same daemon, same run: before and after the flood, their
 * mean is the baseline).
 *
 * The flood runs in child processes (one process cannot hold 20,000 sockets
 * under a 20,000 descriptor limit), from 199 loopback addresses
 * (127.0.0.2 … 127.0.0.200): 10 "heavy" addresses want 500 connections each
 * (over the per-IP cap of 256: 429s), the 189 others about 80 each; together
 * more than the total cap (half the daemon's descriptor limit: 503s). Each
 * flood connection sends nothing; whatever the daemon closes is opened again
 * a second later. The daemon runs with its defaults, except that loopback is
 * not a trusted proxy here and the headers timeout is at its maximum (120 s):
 * with the default 10 s the daemon would shed idle connections itself, and
 * the worst case for descriptors is connections it keeps (as it keeps live
 * streams). The flooded round starts once the daemon holds 95 % of its cap.
 * While flooded, a payment must still be detected by the watcher. What the
 * daemon holds and has refused is its own count (daemon-child.ts).
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultMaxConnections, parseDescriptorLimit } from "../../../src/public/connections.ts";
import {
  type Child,
  cpuMsOf,
  memoryOf,
  openFdsOf,
  spawnDaemon,
  spawnFlooder,
} from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import type { FloodStats } from "../flood-child.ts";
import { describeLoad, type LoadResult, runLoad } from "../load.ts";
import { figure, progress } from "../report.ts";
import { PAYER } from "./detect.ts";
import { BODY, CONNECTIONS } from "./start-payment.ts";

type FloodPlan = {
  heavySources: number;
  heavyEach: number;
  lightSources: number;
  lightTotal: number;
  children: number;
};

const FULL: FloodPlan = {
  heavySources: 10,
  heavyEach: 500,
  lightSources: 189,
  lightTotal: 15_000,
  children: 4,
};
/** --smoke: 600 connections against caps of 200 in total and 20 per address. */
const SMOKE: FloodPlan = {
  heavySources: 2,
  heavyEach: 60,
  lightSources: 18,
  lightTotal: 480,
  children: 2,
};
const SMOKE_CAPS = { maxConnections: 200, maxConnectionsPerIp: 20 };
/** A flood slot whose connection the daemon closed tries again after this. */
const RECONNECT_MS = 1_000;
/** Connects in flight per flood process. */
const IN_FLIGHT = 64;

/**
 * The source address of every slot, heavy addresses first (so they reach
 * the per-IP cap before the total cap is full), dealt to the children in
 * turn so each child has a share of both.
 */
export function floodSources(plan: FloodPlan): string[][] {
  const slots: string[] = [];
  for (let i = 0; i < plan.heavySources; i++) {
    for (let j = 0; j < plan.heavyEach; j++) slots.push(`127.0.0.${2 + i}`);
  }
  for (let j = 0; j < plan.lightTotal; j++) {
    slots.push(`127.0.0.${2 + plan.heavySources + (j % plan.lightSources)}`);
  }
  const perChild: string[][] = Array.from({ length: plan.children }, () => []);
  slots.forEach((source, index) => {
    perChild[index % plan.children]?.push(source);
  });
  return perChild;
}

function sum(all: FloodStats[]): FloodStats {
  const total: FloodStats = {
    slots: 0,
    started: 0,
    attempts: 0,
    connected: 0,
    refused503: 0,
    refused429: 0,
    timedOut408: 0,
    otherAnswers: 0,
    closedSilently: 0,
    errors: {},
  };
  for (const one of all) {
    for (const key of Object.keys(total) as Array<keyof FloodStats>) {
      if (key !== "errors") total[key] += one[key];
    }
    for (const [code, count] of Object.entries(one.errors)) {
      total.errors[code] = (total.errors[code] ?? 0) + count;
    }
  }
  return total;
}

function describeFlood(stats: FloodStats): string {
  return `connected ${stats.connected}, ${stats.started}/${stats.slots} slots started, ${stats.attempts} attempts, 503 ×${stats.refused503}, 429 ×${stats.refused429}, 408 ×${stats.timedOut408}, other ×${stats.otherAnswers}, closed silently ×${stats.closedSilently}, errors ${JSON.stringify(stats.errors)}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rpcCall(url: string, method: string, params: unknown): Promise<unknown> {
  const response = await fetch(`${url}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: unknown; error?: unknown };
  if (body.result === undefined) throw new Error(`${method}: ${JSON.stringify(body)}`);
  return body.result;
}

export const publicFloodPhase: Phase = {
  name: "public_flood",
  figures: [
    { name: "start_payment_rps_flooded", unit: "req/s" },
    { name: "flood_ratio", unit: "ratio" },
    { name: "flood_connections_held", unit: "connections" },
    { name: "flood_max_per_address", unit: "connections" },
    { name: "flood_refused_503", unit: "connections" },
    { name: "flood_refused_429", unit: "connections" },
    { name: "flood_daemon_fds_peak", unit: "fds" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const plan = smoke ? SMOKE : FULL;
    // NOTE: a smoke round of one second, not half: under a loaded machine a
    // half-second round of the flooded daemon sometimes completed nothing.
    const roundS = smoke ? 1 : 10;
    const warmupS = smoke ? 0.5 : 3;
    const base = daemonConfig(chain, join(workDir, "public-flood.sqlite"));
    const daemon = await spawnDaemon({
      config: {
        ...base,
        public: {
          ...base.public,
          // NOTE: the default trusts loopback as a reverse proxy (no per-IP
          // cap); here every 127.0.0.x is a client of its own.
          trustProxy: [],
          headersTimeoutMs: 120_000,
          ...(smoke ? SMOKE_CAPS : {}),
        },
      },
      profile: context.profile("public-flood-daemon"),
      keepLogs: "tail",
    });
    const flooders: Array<Child & { stats(): Promise<FloodStats> }> = [];
    let sampler: NodeJS.Timeout | undefined;
    try {
      const descriptorLimit = parseDescriptorLimit(
        readFileSync(`/proc/${daemon.pid}/limits`, "utf8"),
      );
      if (descriptorLimit === undefined) throw new Error("no descriptor limit for the daemon");
      // The caps in force: the daemon's defaults (docs/production.md, "Connection caps and timeouts").
      const caps = smoke
        ? SMOKE_CAPS
        : { maxConnections: defaultMaxConnections(descriptorLimit), maxConnectionsPerIp: 256 };
      const load = (seconds: number) =>
        runLoad({
          url: `${daemon.privateUrl}/`,
          connections: CONNECTIONS,
          durationS: seconds,
          method: "POST",
          body: BODY,
          headers: { "content-type": "application/json" },
          serverPid: daemon.pid,
        });
      const checked = (what: string, result: LoadResult) => {
        if (result.non2xx > 0 || result.errors > 0 || result.responses === 0) {
          throw new Error(`${what}: ${describeLoad(result)}`);
        }
        progress(`public_flood ${what}: ${describeLoad(result)}`);
        return result;
      };
      progress(`public_flood: warm-up ${warmupS} s, then ${roundS} s without the flood`);
      await load(warmupS);
      const before = checked("before the flood", await load(roundS));

      const rssBefore = memoryOf(daemon.pid).rssMb;
      const sources = floodSources(plan);
      const { port } = new URL(daemon.publicUrl);
      let fdsPeak = openFdsOf(daemon.pid);
      sampler = setInterval(() => {
        fdsPeak = Math.max(fdsPeak, openFdsOf(daemon.pid));
      }, 500);
      const spawned = await Promise.allSettled(
        sources.map((slots) =>
          spawnFlooder({
            host: "127.0.0.1",
            port: Number(port),
            sources: slots,
            reconnectMs: RECONNECT_MS,
            inFlight: IN_FLIGHT,
          }),
        ),
      );
      for (const one of spawned) if (one.status === "fulfilled") flooders.push(one.value);
      const failed = spawned.find((one) => one.status === "rejected");
      if (failed) throw failed.reason;
      const floodStats = async () => sum(await Promise.all(flooders.map((f) => f.stats())));
      const slots = sources.reduce((n, list) => n + list.length, 0);
      progress(
        `public_flood: ${slots} idle connections from ${plan.heavySources + plan.lightSources} addresses in ${flooders.length} processes (daemon: descriptor limit ${descriptorLimit}, caps ${caps.maxConnections} in total, ${caps.maxConnectionsPerIp} per address)`,
      );
      const rampDeadline = performance.now() + 60_000;
      for (;;) {
        const stats = await floodStats();
        if (stats.started === stats.slots) break;
        if (performance.now() > rampDeadline) {
          throw new Error(`the flood did not start in 60 s: ${describeFlood(stats)}`);
        }
        await sleep(250);
      }
      const addresses = [...new Set(sources.flat())];
      for (;;) {
        const held = (await daemon.connections(addresses)).open;
        if (held >= caps.maxConnections * 0.95) break;
        if (performance.now() > rampDeadline) {
          throw new Error(`the daemon holds ${held} connections after 60 s of flood`);
        }
        await sleep(500);
      }
      const ramped = await floodStats();
      progress(`public_flood: flood up: ${describeFlood(ramped)}`);
      if (ramped.refused503 === 0 || ramped.refused429 === 0) {
        throw new Error(`the flood did not reach both caps: ${describeFlood(ramped)}`);
      }

      progress(`public_flood: ${roundS} s with the flood`);
      const floodCpuBefore = flooders.reduce((ms, f) => ms + cpuMsOf(f.pid), 0);
      const floodWallBefore = performance.now();
      const flooded = checked("with the flood", await load(roundS));
      const floodCpu =
        ((flooders.reduce((ms, f) => ms + cpuMsOf(f.pid), 0) - floodCpuBefore) /
          (performance.now() - floodWallBefore)) *
        100;
      progress(
        `public_flood: the flood processes used ${floodCpu.toFixed(0)}% of a core meanwhile`,
      );
      const held = await daemon.connections(addresses);
      progress(
        `public_flood: the daemon holds ${held.open} public connections, at most ${held.maxFromOne} from one address, has refused ${held.refused.total} over the total cap and ${held.refused.perIp} over the per-IP cap; RSS ${rssBefore.toFixed(0)} MB before the flood, ${memoryOf(daemon.pid).rssMb.toFixed(0)} MB now`,
      );

      // The watcher still reaches its node: a payment made during the flood is seen.
      const payment = (await rpcCall(daemon.privateUrl, "start_payment", {
        amount: "0.29",
      })) as { id: string; address: `0x${string}` };
      const paidAt = performance.now();
      await chain.submitTransfer({
        token: chain.token,
        from: PAYER,
        to: payment.address,
        value: 29_000_000n,
      });
      await chain.mine(1);
      for (;;) {
        const got = (await rpcCall(daemon.privateUrl, "get_payment", { id: payment.id })) as {
          status: string;
        };
        if (got.status === "seen") break;
        if (performance.now() - paidAt > 30_000) {
          throw new Error("a payment made during the flood was not seen within 30 s");
        }
        await sleep(50);
      }
      progress(
        `public_flood: a payment made during the flood seen after ${Math.round(performance.now() - paidAt)} ms`,
      );
      const total = await floodStats();
      progress(`public_flood: flood at the end: ${describeFlood(total)}`);
      clearInterval(sampler);
      sampler = undefined;
      await Promise.all(flooders.splice(0).map((f) => f.stop()));

      await sleep(smoke ? 200 : 2_000);
      const after = checked("after the flood", await load(roundS));
      const unflooded = (before.rps + after.rps) / 2;
      emit(figure("start_payment_rps_flooded", flooded.rps, "req/s", { baseline: unflooded }));
      emit(
        figure("flood_ratio", flooded.rps / unflooded, "ratio", {
          target: { on: "value", op: ">=", limit: 0.8 },
        }),
      );
      emit(
        figure("flood_connections_held", held.open, "connections", {
          target: { on: "value", op: "<=", limit: caps.maxConnections },
        }),
      );
      emit(
        figure("flood_max_per_address", held.maxFromOne, "connections", {
          target: { on: "value", op: "<=", limit: caps.maxConnectionsPerIp },
        }),
      );
      emit(figure("flood_refused_503", held.refused.total, "connections"));
      emit(figure("flood_refused_429", held.refused.perIp, "connections"));
      emit(
        figure("flood_daemon_fds_peak", fdsPeak, "fds", {
          target: { on: "value", op: "<", limit: descriptorLimit },
        }),
      );
    } finally {
      if (sampler) clearInterval(sampler);
      await Promise.all(flooders.map((f) => f.stop()));
      await daemon.stop();
    }
  },
};
