/**
 * The hosted checkout page's routes on the public port: `GET /<id>` (the
 * page, in the shopper's language) and `GET /assets/<name>` (its script,
 * styles and theme, content-hashed and cached for good). Answers are plain
 * objects; the public listener writes them.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
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
};

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
  now?: () => number;
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

  function htmlResponse(
    status: number,
    html: string,
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
      vary: "Accept-Language, Cookie, Accept-Encoding",
      ...(settings.frameAncestors.length === 0 ? { "x-frame-options": "DENY" } : {}),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      ...extra,
    };
    const body = Buffer.from(html);
    return { status, headers, body: gzip ? gzipSync(body) : body };
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
      now: now(),
      settings,
      networks: choices,
      paidOn: paidOn ?? settings,
      assets: urls,
    };
  }

  function notFound(request: CheckoutRequest): CheckoutResponse {
    const { lang, cookie } = languageOf(request);
    return htmlResponse(404, renderNotFound({ lang, assets: urls }), request, cookie);
  }

  return {
    async page(id, request) {
      const found = await payments.checkout(id);
      if (!found) return notFound(request);
      const { lang, cookie } = languageOf(request);
      const page = renderPage(await model(id, lang, found, request.query.get("network")));
      return htmlResponse(200, page, request, cookie);
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
  };
}
