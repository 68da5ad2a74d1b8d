/**
 * The checkout page (`GET /<id>`):
 *
 * - checkout_first_load_bytes: what a browser's first load of a waiting
 *   payment's page transfers with `Accept-Encoding: gzip`: the HTML (its
 *   QR codes are inline SVG) and every stylesheet and script it links,
 *   each counted as the bytes read from its socket (status line, headers
 *   and the gzipped body).
 * - checkout_page_rps: `GET /<id>` for random ids among 10,000 payments,
 *   50 connections, gzip accepted, as browsers ask; the baseline is a bare
 *   node:http server answering with the bytes of one real page response
 *   (the same server as status_rps's baseline). Warm-up, then rounds
 *   alternating baseline and daemon, medians.
 */
import { request } from "node:http";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { spawnBaseline, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { describeLoad, type LoadResult, runLoad } from "../load.ts";
import { figure, median, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";

const CONNECTIONS = 50;
/** What a browser sends for a page: gzip accepted, a language. */
const BROWSER_HEADERS = {
  accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  "accept-encoding": "gzip, deflate, br",
  "accept-language": "en-US,en;q=0.9",
};
/** Headers node:http writes itself; the baseline copies every other one. */
const TRANSPORT_HEADERS = new Set([
  "date",
  "connection",
  "keep-alive",
  "content-length",
  "transfer-encoding",
]);

type Fetched = {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as sent (gzipped when the headers say so). */
  body: Buffer;
  /** Bytes read from the socket: status line, headers and body. */
  wireBytes: number;
};

/** GETs `url` on a connection of its own, counting the bytes read from the socket. */
function fetchCounted(url: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: BROWSER_HEADERS }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          wireBytes: res.socket.bytesRead,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** The URLs a page loads on its own: stylesheets, scripts, images (data: URLs are inline). */
function linkedUrls(html: string): string[] {
  const urls = new Set<string>();
  for (const match of html.matchAll(/<(?:link|script|img)\b[^>]*?\b(?:href|src)="([^"]+)"/g)) {
    const url = match[1] as string;
    if (!url.startsWith("data:")) urls.add(url.replaceAll("&amp;", "&"));
  }
  return [...urls];
}

function checked(what: string, result: LoadResult): LoadResult {
  if (result.non2xx > 0 || result.errors > 0 || result.responses === 0) {
    throw new Error(`${what}: ${describeLoad(result)}`);
  }
  return result;
}

export const checkoutPhase: Phase = {
  name: "checkout",
  figures: [
    { name: "checkout_first_load_bytes", unit: "B" },
    { name: "checkout_page_rps", unit: "req/s" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const count = smoke ? 1_000 : 10_000;
    const roundS = smoke ? 0.5 : 5;
    const warmupS = smoke ? 0 : 3;
    const rounds = smoke ? 1 : 3;
    const path = join(workDir, "checkout.sqlite");
    progress(`checkout: seeding ${count} payments`);
    const ids = seedPayments({ path, counts: { pending: count } }).map((p) => p.id);
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path),
      profile: context.profile("checkout-daemon"),
    });
    try {
      const page = await fetchCounted(`${daemon.publicUrl}/${ids[0]}`);
      if (page.status !== 200 || page.headers["content-encoding"] !== "gzip") {
        throw new Error(`the page answered ${page.status}, ${page.headers["content-encoding"]}`);
      }
      const html = gunzipSync(page.body).toString("utf8");
      const parts = [{ url: `/${ids[0]}`, fetched: page, rawBytes: html.length }];
      for (const url of linkedUrls(html)) {
        const fetched = await fetchCounted(new URL(url, daemon.publicUrl).href);
        if (fetched.status !== 200 || fetched.headers["content-encoding"] !== "gzip") {
          throw new Error(
            `${url} answered ${fetched.status}, ${fetched.headers["content-encoding"]}`,
          );
        }
        const raw = gunzipSync(fetched.body).length;
        parts.push({ url, fetched, rawBytes: raw });
      }
      const total = parts.reduce((sum, part) => sum + part.fetched.wireBytes, 0);
      progress(
        `checkout: first load ${total} B on the wire: ${parts
          .map(
            (part) =>
              `${part.url.startsWith("/assets/") ? part.url.slice(8) : "page"} ${part.fetched.wireBytes} B (${part.fetched.body.length} gzipped, ${part.rawBytes} raw)`,
          )
          .join(", ")}`,
      );
      emit(figure("checkout_first_load_bytes", total, "B"));

      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(page.headers)) {
        if (!TRANSPORT_HEADERS.has(name) && typeof value === "string") headers[name] = value;
      }
      const baseline = await spawnBaseline(
        { mode: "status", headers, body: page.body.toString("base64"), bodyEncoding: "base64" },
        context.profile("checkout-baseline"),
      );
      try {
        const pick = () => `/${ids[Math.floor(Math.random() * ids.length)]}`;
        const load = (url: string, pid: number, durationS: number) =>
          runLoad({
            url,
            connections: CONNECTIONS,
            durationS,
            path: pick,
            headers: BROWSER_HEADERS,
            serverPid: pid,
          });
        if (warmupS > 0) {
          progress(`checkout: warm-up (${warmupS} s each), ${page.body.length} B gzipped page`);
          await load(baseline.url, baseline.pid, warmupS);
          await load(daemon.publicUrl, daemon.pid, warmupS);
        }
        const baselineRps: number[] = [];
        const daemonRps: number[] = [];
        for (let round = 1; round <= rounds; round++) {
          const b = checked("baseline", await load(baseline.url, baseline.pid, roundS));
          progress(`checkout round ${round}/${rounds} baseline: ${describeLoad(b)}`);
          const d = checked("daemon", await load(daemon.publicUrl, daemon.pid, roundS));
          progress(`checkout round ${round}/${rounds} daemon:   ${describeLoad(d)}`);
          baselineRps.push(b.rps);
          daemonRps.push(d.rps);
        }
        emit(
          figure("checkout_page_rps", median(daemonRps), "req/s", {
            baseline: median(baselineRps),
          }),
        );
      } finally {
        await baseline.stop();
      }
    } finally {
      await daemon.stop();
    }
  },
};
