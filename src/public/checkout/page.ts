/**
 * The hosted checkout page, rendered on the server and complete without
 * JavaScript: every screen of the lifecycle, in the shopper's language.
 * Every string from the shop (description, shop name, URLs) goes through
 * hono/html's escaping; only our own markup (the QR SVG, a JSON data block
 * with `<` escaped) is inserted raw.
 */
import { html, raw } from "hono/html";
import type { StatusView } from "../../payments/index.ts";
import { fill, LANGUAGES, type Language, type MessageKey, messagesOf } from "./i18n.ts";

/** What the page shows of the daemon's configuration. */
export type CheckoutSettings = {
  shopName: string | undefined;
  support: string | undefined;
  redirectAfterPaidSeconds: number | undefined;
  frameAncestors: readonly string[];
  chainId: number;
  token: string;
  networkName: string;
  symbol: string;
  explorerUrl: string | undefined;
};

/** One screen per situation the shopper can be in, decided from status.json's view only. */
export type Screen =
  | "waiting"
  | "partial"
  | "confirming"
  | "paid"
  | "reorged"
  | "expired"
  | "expired_funds"
  | "paid_late"
  | "cancelled"
  | "cancelled_funds";

/** Screens after which nothing more is expected: no live updates, no refresh. */
export function isFinal(view: Pick<StatusView, "status">): boolean {
  return view.status === "paid" || view.status === "expired" || view.status === "cancelled";
}

/** The screen for a status view; `amount`, `paid` and `late` are base units. */
export function screenOf(
  view: Pick<StatusView, "status" | "paid_late" | "reorged_after_paid">,
  { amount, paid, late }: { amount: bigint; paid: bigint; late: bigint },
): Screen {
  switch (view.status) {
    case "paid":
      return view.reorged_after_paid ? "reorged" : "paid";
    case "cancelled":
      return paid > 0n ? "cancelled_funds" : "cancelled";
    case "expired":
      if (view.paid_late) return "paid_late";
      return paid > 0n ? "expired_funds" : "expired";
    case "seen":
      return paid - late >= amount ? "confirming" : "partial";
    default:
      return "waiting";
  }
}

export type PageModel = {
  id: string;
  lang: Language;
  view: StatusView;
  description: string | null;
  returnUrl: string | null;
  cancelUrl: string | null;
  screen: Screen;
  /** What is still to pay, as a decimal string, and its base units. */
  remaining: { text: string; units: bigint };
  /** The EIP-681 URI for the remainder, and the transfer calldata the wallet button sends. */
  paymentUri: string;
  calldata: string;
  /** Server-rendered QR codes (SVG markup): the payment URI and the address alone. */
  qr: { payment: string; address: string };
  /** The shop's settings on the network shown (its chain id, token, name, explorer). */
  settings: CheckoutSettings;
  /**
   * The network switch of a payment that accepts several networks: each by
   * name with its display name, in the payment's order, and the one shown.
   * Undefined: one network, no switch (the page as it was before networks).
   */
  networks: NetworkChoices | undefined;
  /** The receipt's network: the completing transfer's (its name and explorer). */
  paidOn: Pick<CheckoutSettings, "networkName" | "explorerUrl">;
  assets: { css: string; theme: string; js: string };
};

export type NetworkChoices = {
  selected: string;
  choices: ReadonlyArray<{ name: string; label: string }>;
};

type T = (key: MessageKey, values?: Record<string, string | number>) => string;

function translator(lang: Language): T {
  const messages = messagesOf(lang);
  return (key, values) => fill(messages[key], values);
}

const timeFormats = new Map<Language, Intl.DateTimeFormat>();

/** A UNIX-seconds time as the shopper reads it, in UTC. */
function formatTime(seconds: number, lang: Language): string {
  // NOTE: one formatter per language: making one costs more than the page's HTML.
  let format = timeFormats.get(lang);
  if (!format) {
    format = new Intl.DateTimeFormat(lang === "es" ? "es-ES" : "en-GB", {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: "UTC",
    });
    timeFormats.set(lang, format);
  }
  return `${format.format(new Date(seconds * 1000))} UTC`;
}

const listFormats = new Map<Language, Intl.ListFormat>();

/** "Ethereum or Polygon", "Ethereum o Polygon": the networks a payment accepts, in words. */
function eitherOf(labels: readonly string[], lang: Language): string {
  let format = listFormats.get(lang);
  if (!format) {
    format = new Intl.ListFormat(lang, { type: "disjunction" });
    listFormats.set(lang, format);
  }
  return format.format(labels);
}

/** The network(s) to name where the page says where to send: all it accepts, or the one. */
function acceptedNetworks(model: PageModel): string {
  return model.networks
    ? eitherOf(
        model.networks.choices.map((choice) => choice.label),
        model.lang,
      )
    : model.settings.networkName;
}

/** JSON for a data block inside HTML: `<` escaped so no text ends the script element. */
function jsonBlock(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

function supportLink(support: string | undefined, t: T) {
  if (support === undefined) return html`<p class="support">${t("support_generic")}</p>`;
  const href = support.includes("@") && !support.includes("/") ? `mailto:${support}` : support;
  const [before, after] = t("support", { support: "\u0000" }).split("\u0000");
  return html`<p class="support">${before}<a href="${href}">${support}</a>${after}</p>`;
}

function languageSwitch(model: PageModel, t: T) {
  // With a network switch, changing the language keeps the network shown.
  const network = model.networks ? `&network=${model.networks.selected}` : "";
  return html`<nav class="languages" aria-label="${t("language_switch")}">
    ${LANGUAGES.map((lang) =>
      lang === model.lang
        ? html`<span aria-current="true" lang="${lang}">${messagesOf(lang).language_name}</span>`
        : html`<a href="?lang=${lang}${network}" hreflang="${lang}" lang="${lang}">${messagesOf(lang).language_name}</a>`,
    )}
  </nav>`;
}

/**
 * The network switch: a link per network the payment accepts (`?network=`,
 * so it works without JavaScript; the script swaps the screen in place),
 * then which network the QR, link and wallet button below are for.
 */
function networkSwitch(model: PageModel, t: T) {
  const { networks, settings } = model;
  if (!networks) return "";
  return html`<nav class="networks" aria-labelledby="networks-label">
      <span class="label" id="networks-label">${t("network_switch")}</span>
      ${networks.choices.map(
        ({ name, label }) =>
          html`<a href="?network=${name}" data-network="${name}"${raw(name === networks.selected ? ' aria-current="true"' : "")}>${label}</a>`,
      )}
    </nav>
    <p class="send-only" role="note">${t("send_only_on", { network: settings.networkName })}</p>`;
}

function copyRow({
  id,
  label,
  value,
  unit,
  copyLabel,
  mono,
}: {
  id: string;
  label: string;
  value: string;
  /** Shown after the value, not copied. */
  unit?: string;
  copyLabel: string;
  mono?: boolean;
}) {
  return html`<div class="field">
    <span class="label" id="${id}-label">${label}</span>
    <span class="value${mono ? " mono" : ""}"><span id="${id}">${value}</span>${unit ? html` <span class="unit">${unit}</span>` : ""}</span>
    <button type="button" class="copy" data-copy="${value}" aria-describedby="${id}-label" hidden>${copyLabel}</button>
  </div>`;
}

function payScreen(model: PageModel, t: T) {
  const { view, settings } = model;
  return html`${
    model.screen === "partial"
      ? html`<p class="note">${t("partial_body", {
          paid: view.paid_amount,
          amount: view.amount,
          remaining: model.remaining.text,
          symbol: settings.symbol,
        })}</p>`
      : html`<p class="note">${t("waiting_body")}</p>`
  }
    ${networkSwitch(model, t)}
    <div class="qr-switch">
      <input type="radio" name="qr" id="qr-payment" value="payment" checked>
      <label for="qr-payment">${t("qr_wallet")}</label>
      <input type="radio" name="qr" id="qr-address" value="address">
      <label for="qr-address">${t("qr_address")}</label>
      <figure class="qr qr-payment" role="img" aria-label="${t("qr_wallet_alt", {
        amount: model.remaining.text,
        symbol: settings.symbol,
        address: view.address,
        network: settings.networkName,
      })}">${raw(model.qr.payment)}</figure>
      <figure class="qr qr-address" role="img" aria-label="${t("qr_address_alt", { address: view.address })}">${raw(model.qr.address)}<figcaption>${t("qr_address_note", { amount: model.remaining.text, symbol: settings.symbol })}</figcaption></figure>
    </div>
    ${copyRow({
      id: "amount",
      label: model.screen === "partial" ? t("remaining") : t("amount"),
      value: model.remaining.text,
      unit: settings.symbol,
      copyLabel: t("copy_amount"),
    })}
    ${copyRow({ id: "address", label: t("address"), value: view.address, copyLabel: t("copy_address"), mono: true })}
    <p class="token">${t("token_contract", { symbol: settings.symbol, network: settings.networkName, token: settings.token })}</p>
    <div class="actions">
      <a class="button" href="${model.paymentUri}">${t("open_wallet")}</a>
      <button type="button" class="button secondary" id="wallet-pay" data-label="${t("pay_browser_wallet", { wallet: "{wallet}" })}" data-fallback="${t("browser_wallet")}" hidden>${t("pay_browser_wallet", { wallet: t("browser_wallet") })}</button>
    </div>
    <p class="wallet-message" id="wallet-message" role="status" aria-live="polite"></p>
    <p class="countdown"><span>${t("expires_in")}</span> <time id="countdown" datetime="${new Date(view.expires_at * 1000).toISOString()}" data-expires="${view.expires_at}">${t("expires_at", { time: formatTime(view.expires_at, model.lang) })}</time></p>
    <p class="warning" role="note">${t("warning", { symbol: settings.symbol, network: acceptedNetworks(model) })}</p>`;
}

function receipt(model: PageModel, t: T) {
  const { view, settings, paidOn } = model;
  const tx = view.tx_hash ?? "";
  const txCell = paidOn.explorerUrl
    ? html`<a class="mono" href="${paidOn.explorerUrl}/tx/${tx}" rel="noreferrer">${tx}</a>`
    : html`<span class="mono">${tx}</span>`;
  return html`<section class="receipt" aria-labelledby="receipt-title">
    <h2 id="receipt-title">${t("receipt")}</h2>
    <dl>
      <dt>${t("receipt_amount")}</dt><dd>${view.paid_amount} ${settings.symbol}</dd>
      ${model.networks ? html`<dt>${t("receipt_network")}</dt><dd>${paidOn.networkName}</dd>` : ""}
      <dt>${t("receipt_tx")}</dt><dd>${txCell}</dd>
      <dt>${t("receipt_time")}</dt><dd>${view.paid_at === null ? "" : formatTime(view.paid_at, model.lang)}</dd>
    </dl>
  </section>`;
}

/** The headline of a screen, also what the live region announces. */
export function headline(screen: Screen, lang: Language): string {
  const t = translator(lang);
  const keys: Record<Screen, MessageKey> = {
    waiting: "waiting_title",
    partial: "partial_title",
    confirming: "confirming_title",
    paid: "paid_title",
    reorged: "reorged_title",
    expired: "expired_title",
    expired_funds: "expired_title",
    paid_late: "paid_late_title",
    cancelled: "cancelled_title",
    cancelled_funds: "cancelled_title",
  };
  return t(keys[screen]);
}

function screenBody(model: PageModel, t: T) {
  const { view, settings } = model;
  const support = supportLink(settings.support, t);
  switch (model.screen) {
    case "waiting":
    case "partial":
      return payScreen(model, t);
    case "confirming":
      return html`<p class="note">${t("confirming_body", {
        n: Math.min(view.confirmations, view.required_confirmations),
        m: view.required_confirmations,
      })}</p>
      <progress max="${view.required_confirmations}" value="${Math.min(view.confirmations, view.required_confirmations)}"></progress>`;
    case "paid": {
      const redirect =
        model.returnUrl !== null && settings.redirectAfterPaidSeconds !== undefined
          ? html`<p class="note" id="redirect-note">${t("redirecting", { seconds: settings.redirectAfterPaidSeconds })}</p>`
          : "";
      return html`<p class="note">${t("paid_body", { amount: view.amount, symbol: settings.symbol })}</p>
        ${receipt(model, t)}
        ${model.returnUrl === null ? "" : html`<p class="actions"><a class="button" id="return-link" href="${model.returnUrl}">${t("return_to_shop")}</a></p>`}
        ${redirect}`;
    }
    case "reorged":
      return html`<p class="note">${t("reorged_body", { network: model.paidOn.networkName })}</p>${support}`;
    case "expired":
      return html`<p class="note">${t("expired_body")}</p>${support}`;
    case "expired_funds":
      return html`<p class="note">${t("expired_funds_body", { paid: view.paid_amount, symbol: settings.symbol })}</p>${support}`;
    case "paid_late":
      return html`<p class="note">${t("paid_late_body")}</p>${support}`;
    case "cancelled":
    case "cancelled_funds":
      return html`<p class="note">${
        model.screen === "cancelled"
          ? t("cancelled_body")
          : t("cancelled_funds_body", { paid: view.paid_amount, symbol: settings.symbol })
      }</p>
        ${model.cancelUrl === null ? "" : html`<p class="actions"><a class="button" href="${model.cancelUrl}">${t("back_to_shop")}</a></p>`}
        ${support}`;
  }
}

/** The data the page's script reads; part of the swapped screen, so it follows each update. */
function screenData(model: PageModel) {
  const { view, settings } = model;
  return {
    id: model.id,
    lang: model.lang,
    screen: model.screen,
    status: view.status,
    final: isFinal(view),
    expiresAt: view.expires_at,
    /** The network shown, and below what its wallet needs. */
    networkName: settings.networkName,
    chainId: `0x${settings.chainId.toString(16)}`,
    token: settings.token,
    calldata: model.calldata,
    redirect:
      model.screen === "paid" &&
      model.returnUrl !== null &&
      settings.redirectAfterPaidSeconds !== undefined
        ? { url: model.returnUrl, seconds: settings.redirectAfterPaidSeconds }
        : null,
    headline: headline(model.screen, model.lang),
    signature: [
      view.status,
      view.paid_amount,
      view.confirmations,
      view.paid_late,
      view.reorged_after_paid,
    ].join("|"),
  };
}

/** The part of the page that changes with the payment (swapped in place by the script). */
export function renderScreen(model: PageModel): string {
  const t = translator(model.lang);
  return html`<section id="screen" data-screen="${model.screen}" aria-labelledby="live">
    ${screenBody(model, t)}
    <script type="application/json" id="screen-data">${raw(jsonBlock(screenData(model)))}</script>
  </section>`.toString();
}

/** The whole page. */
export function renderPage(model: PageModel): string {
  const t = translator(model.lang);
  const { view, settings } = model;
  const final = isFinal(view);
  const redirect = screenData(model).redirect;
  // NOTE: a meta refresh inside <noscript> applies only without JavaScript;
  // with it, live updates replace reloads.
  const refresh = final
    ? redirect
      ? html`<noscript><meta http-equiv="refresh" content="${redirect.seconds};url=${redirect.url}"></noscript>`
      : ""
    : html`<noscript><meta http-equiv="refresh" content="10"></noscript>`;
  const messages = messagesOf(model.lang);
  const scriptMessages = Object.fromEntries(
    (
      [
        "copied",
        "copy_failed",
        "expired_now",
        "wallet_confirm",
        "wallet_switch",
        "wallet_submitted",
        "wallet_rejected",
        "wallet_unknown_chain",
        "wallet_pending",
        "wallet_error",
        "redirecting",
      ] as const
    ).map((key) => [key, messages[key]]),
  );
  return `<!doctype html>${html`<html lang="${model.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${t("page_title", { amount: view.amount, symbol: settings.symbol })}${settings.shopName ? ` · ${settings.shopName}` : ""}</title>
<link rel="stylesheet" href="${model.assets.css}">
<link rel="stylesheet" href="${model.assets.theme}">
${refresh}
<script src="${model.assets.js}" defer></script>
</head>
<body>
<header class="top">
  <p class="shop">${settings.shopName ? t("pay_to", { shop: settings.shopName }) : t("pay_generic")}</p>
  ${languageSwitch(model, t)}
</header>
<main>
  <h1><span class="amount">${view.amount}</span> <span class="symbol">${settings.symbol}</span></h1>
  <p class="network">${t("network", { symbol: settings.symbol, network: acceptedNetworks(model) })}</p>
  ${model.description === null ? "" : html`<p class="description"><span class="label">${t("for")}:</span> ${model.description}</p>`}
  <p id="live" class="headline" role="status" aria-live="polite" aria-atomic="true">${headline(model.screen, model.lang)}</p>
  ${raw(renderScreen(model))}
</main>
<script type="application/json" id="page-data">${raw(
    jsonBlock({
      id: model.id,
      lang: model.lang,
      frameAncestors: settings.frameAncestors,
      messages: scriptMessages,
    }),
  )}</script>
</body>
</html>`}`;
}

/** The 404 page, in the shopper's language. */
export function renderNotFound({
  lang,
  assets,
}: {
  lang: Language;
  assets: PageModel["assets"];
}): string {
  const t = translator(lang);
  return `<!doctype html>${html`<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${t("not_found_title")}</title>
<link rel="stylesheet" href="${assets.css}">
<link rel="stylesheet" href="${assets.theme}">
</head>
<body>
<main>
  <h1>${t("not_found_title")}</h1>
  <p class="note">${t("not_found_body")}</p>
</main>
</body>
</html>`}`;
}
