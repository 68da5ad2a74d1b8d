/**
 * Load generation with autocannon's programmatic API, in the bench process,
 * against a server in a child process. Records every response time (ms, not
 * autocannon's whole-millisecond histogram) and how busy the client and the
 * server were, so a client-bound round shows up in the progress lines.
 */
import autocannon from "autocannon";
import { cpuMsOf } from "./children.ts";
import { percentile } from "./report.ts";

export type LoadOptions = {
  url: string;
  connections: number;
  durationS: number;
  /** Picks the path of each request (e.g. a random payment id). */
  path?: () => string;
  method?: "GET" | "POST";
  body?: string;
  headers?: Record<string, string>;
  /** The server's pid, to report its CPU use. */
  serverPid?: number;
};

export type LoadResult = {
  /** 2xx responses per second. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  responses: number;
  non2xx: number;
  errors: number;
  /** Average bytes per response (headers included). */
  bytesPerResponse: number;
  /** CPU use of the bench process and of the server during the run, in % of one core. */
  clientCpu: number;
  serverCpu: number | null;
};

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const serverBefore = options.serverPid ? cpuMsOf(options.serverPid) : 0;
  const wallBefore = performance.now();
  const pick = options.path;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        method: options.method ?? "GET",
        ...(options.body !== undefined ? { body: options.body } : {}),
        ...(options.headers ? { headers: options.headers } : {}),
        ...(pick
          ? { requests: [{ setupRequest: (request) => ({ ...request, path: pick() }) }] }
          : {}),
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
  const wallMs = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  const ok = result["2xx"];
  return {
    rps: ok / result.duration,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: percentile(latencies, 100),
    responses: ok + result.non2xx,
    non2xx: result.non2xx,
    errors: result.errors,
    bytesPerResponse: result.throughput.total / Math.max(1, ok + result.non2xx),
    clientCpu: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
    serverCpu: options.serverPid
      ? ((cpuMsOf(options.serverPid) - serverBefore) / wallMs) * 100
      : null,
  };
}

/** One progress-line summary of a load run. */
export function describeLoad(result: LoadResult): string {
  const server = result.serverCpu === null ? "" : `, server CPU ${result.serverCpu.toFixed(0)}%`;
  return `${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.bytesPerResponse.toFixed(0)} B/response, ${result.non2xx} non-2xx, ${result.errors} errors, client CPU ${result.clientCpu.toFixed(0)}%${server}`;
}
