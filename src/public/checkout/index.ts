/**
 * The hosted checkout page's routes on the public port: `GET /<id>` (the
 * page, in the shopper's language) and `GET /assets/<name>` (its script,
 * styles and theme, content-hashed and cached for good). Answers are plain
 * objects; the public listener writes them.
 *
 * A page's bytes follow from what it shows of the payment (its view, the
 * network shown, the language) and nothing else: the server's clock, which
 * the countdown needs, travels in a header (`Server-Timing: clock`). So a
 * page, gzipped, is rendered once and served from a cache until what it
 * shows changes: building its two QR codes and compressing it cost a
 * hundred times what serving its bytes does, and a bot asking for pages
 * must not take the public port's core from everyone else.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import QRCode from "qrcode";
import { formatAmount } from "../../payments/amount.ts";
import type { CheckoutView, Payments } from "../../payments/index.ts";
import { chooseLanguage, type Language } from "./i18n.ts";
import {
  type CheckoutSettings,
  type PageModel,
  renderNotFound,
  renderPage,
  screenOf,
} from "./page.ts";
import { erc20TransferUri, transferCalldata } from "./uri.ts";

export type { CheckoutSettings } from "./page.ts";

/** An answer of the checkout routes; `body` is already gzipped when `headers` say so. */
export type CheckoutResponse = {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
};

export type CheckoutRequest = {
  /** The path without the query string. */
  path: string;
  query: URLSearchParams;
  cookie: string | undefined;
  acceptLanguage: string | undefined;
  acceptEncoding: string | undefined;
};

type Asset = { url: string; type: string; raw: Buffer; gzip: Buffer };

const ASSET_DIR = new URL("./assets/", import.meta.url);
/** QR codes kept (then the cache starts over): each is a few KB. */
const QR_CACHE_SIZE = 2_000;
/** The rendered pages kept, gzipped (a page is about 4 KB): the least recently served go first. */
export const PAGE_CACHE_BYTES = 64 * 1024 * 1024;
/** The shopper's language choice is remembered this long (seconds). */
const LANGUAGE_COOKIE_MAX_AGE = 365 * 86_400;

function asset(name: string, type: string, content: Buffer): Asset {
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 12);
  const dot = name.lastIndexOf(".");
  return {
    url: `/assets/${name.slice(0, dot)}.${hash}${name.slice(dot)}`,
    type,
    raw: content,
    gzip: gzipSync(content, { level: 9 }),
  };
}

/** The page's Content-Security-Policy: nothing but this origin, framing only by the shop's origins. */
export function contentSecurityPolicy(frameAncestors: readonly string[]): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    `frame-ancestors ${frameAncestors.length > 0 ? frameAncestors.join(" ") : "'none'"}`,
  ].join("; ");
}

export type Checkout = {
  /** `GET /<id>` for a well-formed id: the page, or the 404 page. */
  page(id: string, request: CheckoutRequest): Promise<CheckoutResponse>;
  /** `GET /assets/<name>`; undefined: not one of ours. */
  asset(path: string, acceptEncoding: string | undefined): CheckoutResponse | undefined;
  /** The 404 page, in the language the request asks for. */
  notFound(request: CheckoutRequest): CheckoutResponse;
  /** Asset URLs, for the benchmark's first-load count. */
  assetUrls(): string[];
  /** The rendered-page cache: pages served from it and rendered, and what it holds. */
  pageCacheStats(): PageCacheStats;
};

export type PageCacheStats = { hits: number; misses: number; entries: number; bytes: number };

/** What the page shows of one network: where to send and how it is called. */
export type CheckoutNetwork = Pick<
  CheckoutSettings,
  "chainId" | "token" | "networkName" | "symbol" | "explorerUrl"
>;

/** The part of the settings that follows the network shown. */
function onNetwork(settings: CheckoutSettings, network: CheckoutNetwork): CheckoutSettings {
  return {
    ...settings,
    chainId: network.chainId,
    token: network.token,
    networkName: network.networkName,
    symbol: network.symbol,
    explorerUrl: network.explorerUrl,
  };
}

export function createCheckout({
  payments,
  settings,
  networks,
  decimals,
  language,
  themeColor,
  now = () => Date.now(),
  pageCacheBytes = PAGE_CACHE_BYTES,
}: {
  payments: Pick<Payments, "checkout">;
  /** The page's settings, with the first network's (the only one with a single chain). */
  settings: CheckoutSettings;
  /**
   * Each network by name: a payment whose view lists the networks it
   * accepts is shown on one of them (the QR's chain id, the token, the
   * wallet's chain): the one `?network=` names, else the first; with two
   * or more the page has a switch. Undefined: always `settings`' network.
   */
  networks?: ReadonlyMap<string, CheckoutNetwork> | undefined;
  decimals: number;
  /** `checkout.language`: the last fallback. */
  language: Language;
  themeColor: string;
  /** The server's clock, sent with each page for the countdown. */
  now?: () => number;
  /** How many bytes of rendered pages to keep; 0: render every page. */
  pageCacheBytes?: number;
}): Checkout {
  const assets = new Map<string, Asset>();
  const add = (item: Asset) => {
    assets.set(item.url, item);
    return item.url;
  };
  const urls = {
    css: add(
      asset(
        "checkout.css",
        "text/css; charset=utf-8",
        readFileSync(new URL("checkout.css", ASSET_DIR)),
      ),
    ),
    js: add(
      asset(
        "checkout.js",
        "text/javascript; charset=utf-8",
        readFileSync(new URL("checkout.js", ASSET_DIR)),
      ),
    ),
    theme: add(
      asset("theme.css", "text/css; charset=utf-8", Buffer.from(`:root{--accent:${themeColor}}\n`)),
    ),
  };
  const csp = contentSecurityPolicy(settings.frameAncestors);
  const qrCache = new Map<string, string>();

  async function qr(text: string): Promise<string> {
    const hit = qrCache.get(text);
    if (hit !== undefined) return hit;
    const svg = await QRCode.toString(text, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
    if (qrCache.size >= QR_CACHE_SIZE) qrCache.clear();
    qrCache.set(text, svg);
    return svg;
  }

  /** An HTML answer of `status`: `gzipped` as it is when the request accepts gzip, else unzipped. */
  function htmlResponse(
    status: number,
    gzipped: Buffer,
    request: CheckoutRequest,
    extra: Record<string, string> = {},
  ): CheckoutResponse {
    const gzip = /\bgzip\b/.test(request.acceptEncoding ?? "");
    const headers: Record<string, string> = {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": csp,
      "referrer-policy": "no-referrer",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
      // The countdown's reference: the page's script reads it from the
      // navigation's timing (the page's own bytes carry no time).
      "server-timing": `clock;desc="${now()}"`,
      vary: "Accept-Language, Cookie, Accept-Encoding",
      ...(settings.frameAncestors.length === 0 ? { "x-frame-options": "DENY" } : {}),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      ...extra,
    };
    return { status, headers, body: gzip ? gzipped : gunzipSync(gzipped) };
  }

  function languageOf(request: CheckoutRequest) {
    const query = request.query.get("lang");
    const lang = chooseLanguage({
      query,
      cookie: request.cookie,
      acceptLanguage: request.acceptLanguage,
      fallback: language,
    });
    // The shopper chose with the switch (or the shop's link): remember it.
    const cookie =
      query === lang
        ? {
            "set-cookie": `lang=${lang}; Path=/; Max-Age=${LANGUAGE_COOKIE_MAX_AGE}; SameSite=Lax`,
          }
        : {};
    return { lang, cookie };
  }

  /**
   * The networks a payment's page offers (those it accepts, in its order)
   * and the one it shows: `requested` if it is one of them, else the first.
   * Without a network list (the single `chain`), `settings`' network alone.
   */
  function networksFor(view: CheckoutView["view"], requested: string | null) {
    const offered = (view.networks ?? []).flatMap((name) => {
      const network = networks?.get(name);
      return network ? [{ name, network }] : [];
    });
    const shown = offered.find((choice) => choice.name === requested) ?? offered[0];
    const paidOn = view.network ? networks?.get(view.network) : undefined;
    return {
      settings: shown ? onNetwork(settings, shown.network) : settings,
      // NOTE: one network is shown as it always was: no switch.
      choices:
        shown && offered.length > 1
          ? {
              selected: shown.name,
              choices: offered.map(({ name, network }) => ({ name, label: network.networkName })),
            }
          : undefined,
      paidOn: paidOn ? onNetwork(settings, paidOn) : undefined,
    };
  }

  async function model(
    id: string,
    lang: Language,
    found: CheckoutView,
    requestedNetwork: string | null,
  ): Promise<PageModel> {
    const { view, amounts } = found;
    const { settings, choices, paidOn } = networksFor(view, requestedNetwork);
    const inTime = amounts.paid - amounts.late;
    const remainingUnits = amounts.amount > inTime ? amounts.amount - inTime : 0n;
    const paymentUri = erc20TransferUri({
      token: settings.token,
      chainId: settings.chainId,
      to: view.address,
      amount: remainingUnits,
    });
    const [paymentQr, addressQr] = await Promise.all([qr(paymentUri), qr(view.address)]);
    return {
      id,
      lang,
      view,
      description: found.description,
      returnUrl: found.returnUrl,
      cancelUrl: found.cancelUrl,
      screen: screenOf(view, amounts),
      remaining: { text: formatAmount(remainingUnits, decimals), units: remainingUnits },
      paymentUri,
      calldata: transferCalldata({ to: view.address, amount: remainingUnits }),
      qr: { payment: paymentQr, address: addressQr },
      settings,
      networks: choices,
      paidOn: paidOn ?? settings,
      assets: urls,
    };
  }

  function notFound(request: CheckoutRequest): CheckoutResponse {
    const { lang, cookie } = languageOf(request);
    return htmlResponse(404, notFoundPage(lang), request, cookie);
  }

  const pages = createPageCache(pageCacheBytes);
  /** The 404 page of each language, rendered once: it shows nothing of any payment. */
  const notFoundPages = new Map<Language, Buffer>();
  function notFoundPage(lang: Language): Buffer {
    let page = notFoundPages.get(lang);
    if (!page) {
      page = gzipSync(Buffer.from(renderNotFound({ lang, assets: urls })));
      notFoundPages.set(lang, page);
    }
    return page;
  }

  /** The page of `found` in `lang` on the network asked for, gzipped: from the cache, or rendered. */
  async function pageGzip(
    id: string,
    lang: Language,
    found: CheckoutView,
    requested: string | null,
  ) {
    const shown = networksFor(found.view, requested).choices?.selected ?? "";
    // NOTE: keyed by the network shown, not the one asked for: an unknown
    // ?network= shows the first and takes no entry of its own.
    const key = `${id}\n${lang}\n${shown}`;
    const { view, amounts, description, returnUrl, cancelUrl } = found;
    const shows = JSON.stringify([
      view,
      `${amounts.amount}`,
      `${amounts.paid}`,
      `${amounts.late}`,
      description,
      returnUrl,
      cancelUrl,
    ]);
    const render = async () =>
      gzipSync(Buffer.from(renderPage(await model(id, lang, found, requested))));
    if (pageCacheBytes <= 0) return render();
    const hit = pages.get(key, shows);
    if (hit) return hit;
    const gzip = await render();
    pages.set(key, shows, gzip);
    return gzip;
  }

  return {
    async page(id, request) {
      const found = await payments.checkout(id);
      if (!found) return notFound(request);
      const { lang, cookie } = languageOf(request);
      const gzip = await pageGzip(id, lang, found, request.query.get("network"));
      return htmlResponse(200, gzip, request, cookie);
    },
    asset(path, acceptEncoding) {
      const item = assets.get(path);
      if (!item) return undefined;
      const gzip = /\bgzip\b/.test(acceptEncoding ?? "");
      return {
        status: 200,
        headers: {
          "content-type": item.type,
          "cache-control": "public, max-age=31536000, immutable",
          "x-content-type-options": "nosniff",
          vary: "Accept-Encoding",
          ...(gzip ? { "content-encoding": "gzip" } : {}),
        },
        body: gzip ? item.gzip : item.raw,
      };
    },
    notFound,
    assetUrls: () => [...assets.keys()],
    pageCacheStats: () => pages.stats(),
  };
}

/**
 * Rendered pages by key (payment, language, network shown), each with what
 * it shows: an entry serves only while the payment still shows the same.
 * Bounded by the bytes kept; the least recently served entry goes first.
 */
function createPageCache(maxBytes: number) {
  const entries = new Map<string, { shows: string; body: Buffer }>();
  let bytes = 0;
  let hits = 0;
  let misses = 0;
  const sizeOf = (key: string, entry: { shows: string; body: Buffer }) =>
    key.length + entry.shows.length + entry.body.length;
  function drop(key: string) {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    bytes -= sizeOf(key, entry);
  }
  return {
    get(key: string, shows: string): Buffer | undefined {
      const entry = entries.get(key);
      if (!entry || entry.shows !== shows) {
        drop(key);
        misses++;
        return undefined;
      }
      hits++;
      // Most recently served last: Map keeps insertion order.
      entries.delete(key);
      entries.set(key, entry);
      return entry.body;
    },
    set(key: string, shows: string, body: Buffer): void {
      drop(key);
      const entry = { shows, body };
      const size = sizeOf(key, entry);
      if (size > maxBytes) return;
      entries.set(key, entry);
      bytes += size;
      for (const [oldest] of entries) {
        if (bytes <= maxBytes) break;
        drop(oldest);
      }
    },
    stats: (): PageCacheStats => ({ hits, misses, entries: entries.size, bytes }),
  };
}
