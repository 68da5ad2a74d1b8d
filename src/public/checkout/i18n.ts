/**
 * The checkout page's words in English and Spanish, every string of the
 * page (the no-JavaScript page and the script's messages included), and how
 * a language is chosen. Amounts and links always use "." as the decimal
 * separator, whatever the language.
 */

export const LANGUAGES = ["en", "es"] as const;
export type Language = (typeof LANGUAGES)[number];

export function isLanguage(value: unknown): value is Language {
  return (LANGUAGES as readonly unknown[]).includes(value);
}

const en = {
  language_name: "English",
  language_switch: "Language",
  page_title: "Pay {amount} {symbol}",
  pay_to: "Payment to {shop}",
  pay_generic: "Payment",
  for: "For",
  network: "{symbol} on {network}",
  amount: "Amount",
  address: "Deposit address",
  token_contract: "{symbol} token contract on {network}: {token}",
  warning:
    "Send only {symbol} on {network} to this address. Any other token, or {symbol} on another network, is lost.",
  network_switch: "Pay on",
  send_only_on: "Send only on {network}. The QR code and the buttons below are for {network}.",
  qr_label: "QR code",
  qr_wallet: "Payment QR",
  qr_address: "Address only",
  qr_wallet_alt: "QR code of a payment request for {amount} {symbol} to {address} on {network}",
  qr_address_alt: "QR code of the address {address}",
  qr_address_note:
    "This QR holds the address only: type the amount, {amount} {symbol}, in your wallet.",
  open_wallet: "Open in wallet",
  pay_browser_wallet: "Pay with {wallet}",
  browser_wallet: "browser wallet",
  copy: "Copy",
  copy_amount: "Copy amount",
  copy_address: "Copy address",
  copied: "Copied.",
  copy_failed: "Could not copy: select the text and copy it yourself.",
  expires_in: "Expires in",
  expires_at: "Expires at {time}",
  expired_now: "Expired",
  status: "Status",
  waiting_title: "Waiting for your payment",
  waiting_body: "Send the amount below. This page updates by itself when the payment arrives.",
  partial_title: "Partially paid",
  partial_body:
    "Received {paid} of {amount} {symbol}. Send the remaining {remaining} {symbol} to the same address.",
  remaining: "Remaining",
  confirming_title: "Payment detected",
  confirming_body:
    "Waiting for confirmations: {n} of {m}. You can close this page; the shop will be told.",
  paid_title: "Paid. Thank you!",
  paid_body: "Your payment of {amount} {symbol} is complete.",
  receipt: "Receipt",
  receipt_amount: "Amount paid",
  receipt_network: "Network",
  receipt_tx: "Transaction",
  receipt_time: "Paid at",
  return_to_shop: "Return to the shop",
  redirecting: "Returning to the shop in {seconds} s.",
  expired_title: "This payment has expired",
  expired_body: "Do not send funds to this address any more.",
  expired_funds_body:
    "The full amount did not arrive before the deadline. Received: {paid} {symbol}. The shop will contact you about it.",
  paid_late_title: "Paid late",
  paid_late_body:
    "The full amount arrived after the deadline. The shop will contact you: it decides whether to complete the order or refund.",
  cancelled_title: "This payment was cancelled",
  cancelled_body: "Do not send funds to this address.",
  cancelled_funds_body:
    "Funds arrived after the cancellation ({paid} {symbol}). The shop will contact you about a refund.",
  back_to_shop: "Back to the shop",
  reorged_title: "Please contact the shop",
  reorged_body:
    "A reorganisation of the {network} chain removed the transaction of this payment after it was confirmed. The shop has been told and will check it with you.",
  support: "Questions? Contact {support}.",
  support_generic: "Questions? Contact the shop.",
  wallet_confirm: "Confirm in your wallet…",
  wallet_switch: "Switch your wallet to {network}…",
  wallet_submitted:
    "Transaction submitted: {hash}. This page shows the payment once the network includes it.",
  wallet_rejected: "You rejected the request in your wallet. Nothing was sent.",
  wallet_unknown_chain:
    "Your wallet does not know {network} (chain id {chainId}). Add it to your wallet, then try again.",
  wallet_pending: "A request is already open in your wallet: finish or close it there.",
  wallet_error: "The wallet reported an error: {message}",
  not_found_title: "Payment not found",
  not_found_body: "Check the link the shop gave you.",
  live_updates_off: "Live updates are off: this page refreshes every few seconds.",
} as const;

export type MessageKey = keyof typeof en;
type Messages = Record<MessageKey, string>;

const es: Messages = {
  language_name: "Español",
  language_switch: "Idioma",
  page_title: "Paga {amount} {symbol}",
  pay_to: "Pago a {shop}",
  pay_generic: "Pago",
  for: "Concepto",
  network: "{symbol} en {network}",
  amount: "Importe",
  address: "Dirección de depósito",
  token_contract: "Contrato del token {symbol} en {network}: {token}",
  warning:
    "Envía solo {symbol} en {network} a esta dirección. Cualquier otro token, o {symbol} en otra red, se pierde.",
  network_switch: "Pagar en",
  send_only_on: "Envía solo en {network}. El código QR y los botones de abajo son para {network}.",
  qr_label: "Código QR",
  qr_wallet: "QR de pago",
  qr_address: "Solo dirección",
  qr_wallet_alt: "Código QR de una solicitud de pago de {amount} {symbol} a {address} en {network}",
  qr_address_alt: "Código QR de la dirección {address}",
  qr_address_note:
    "Este QR contiene solo la dirección: escribe el importe, {amount} {symbol}, en tu billetera.",
  open_wallet: "Abrir en la billetera",
  pay_browser_wallet: "Pagar con {wallet}",
  browser_wallet: "la billetera del navegador",
  copy: "Copiar",
  copy_amount: "Copiar importe",
  copy_address: "Copiar dirección",
  copied: "Copiado.",
  copy_failed: "No se pudo copiar: selecciona el texto y cópialo tú.",
  expires_in: "Caduca en",
  expires_at: "Caduca el {time}",
  expired_now: "Caducado",
  status: "Estado",
  waiting_title: "Esperando tu pago",
  waiting_body: "Envía el importe indicado. Esta página se actualiza sola cuando llegue el pago.",
  partial_title: "Pago parcial",
  partial_body:
    "Recibidos {paid} de {amount} {symbol}. Envía los {remaining} {symbol} restantes a la misma dirección.",
  remaining: "Restante",
  confirming_title: "Pago detectado",
  confirming_body:
    "Esperando confirmaciones: {n} de {m}. Puedes cerrar esta página; la tienda recibirá el aviso.",
  paid_title: "Pagado. ¡Gracias!",
  paid_body: "Tu pago de {amount} {symbol} se ha completado.",
  receipt: "Recibo",
  receipt_amount: "Importe pagado",
  receipt_network: "Red",
  receipt_tx: "Transacción",
  receipt_time: "Pagado el",
  return_to_shop: "Volver a la tienda",
  redirecting: "Volviendo a la tienda en {seconds} s.",
  expired_title: "Este pago ha caducado",
  expired_body: "No envíes más fondos a esta dirección.",
  expired_funds_body:
    "El importe completo no llegó antes del plazo. Recibido: {paid} {symbol}. La tienda se pondrá en contacto contigo.",
  paid_late_title: "Pagado tarde",
  paid_late_body:
    "El importe completo llegó después del plazo. La tienda se pondrá en contacto contigo: decide si completa el pedido o te devuelve el dinero.",
  cancelled_title: "Este pago se ha cancelado",
  cancelled_body: "No envíes fondos a esta dirección.",
  cancelled_funds_body:
    "Llegaron fondos después de la cancelación ({paid} {symbol}). La tienda se pondrá en contacto contigo para devolverlos.",
  back_to_shop: "Volver a la tienda",
  reorged_title: "Contacta con la tienda",
  reorged_body:
    "Una reorganización de la cadena {network} eliminó la transacción de este pago después de confirmarse. La tienda ya lo sabe y lo revisará contigo.",
  support: "¿Dudas? Contacta con {support}.",
  support_generic: "¿Dudas? Contacta con la tienda.",
  wallet_confirm: "Confirma en tu billetera…",
  wallet_switch: "Cambia tu billetera a {network}…",
  wallet_submitted:
    "Transacción enviada: {hash}. Esta página mostrará el pago cuando la red lo incluya.",
  wallet_rejected: "Rechazaste la solicitud en tu billetera. No se envió nada.",
  wallet_unknown_chain:
    "Tu billetera no conoce {network} (id de cadena {chainId}). Añádela a tu billetera y vuelve a intentarlo.",
  wallet_pending: "Ya hay una solicitud abierta en tu billetera: termínala o ciérrala allí.",
  wallet_error: "La billetera devolvió un error: {message}",
  not_found_title: "Pago no encontrado",
  not_found_body: "Revisa el enlace que te dio la tienda.",
  live_updates_off:
    "Las actualizaciones en vivo están desactivadas: esta página se recarga cada pocos segundos.",
};

const MESSAGES: Record<Language, Messages> = { en, es };

/** The messages of `lang`. */
export function messagesOf(lang: Language): Messages {
  return MESSAGES[lang];
}

/** `template` with each `{name}` replaced by `values[name]` (missing names stay as written). */
export function fill(template: string, values: Record<string, string | number> = {}): string {
  return template.replace(/\{([a-zA-Z_]+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole,
  );
}

/** The language named in an Accept-Language header that we speak, by the header's q-values. */
function fromAcceptLanguage(header: string | undefined): Language | undefined {
  if (!header) return undefined;
  const ranked = header
    .split(",")
    .slice(0, 32)
    .map((part, index) => {
      const [tag = "", ...params] = part.trim().split(";");
      const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      return { tag: tag.trim().toLowerCase(), q: q === undefined ? 1 : Number(q), index };
    })
    .filter((entry) => entry.q > 0 && Number.isFinite(entry.q))
    .sort((a, b) => b.q - a.q || a.index - b.index);
  for (const { tag } of ranked) {
    const primary = tag.split("-")[0];
    if (isLanguage(primary)) return primary;
  }
  return undefined;
}

/**
 * The page's language: `?lang=`, then the shopper's saved choice (the `lang`
 * cookie), then Accept-Language (any `es-*` is `es`), then the configured
 * default.
 */
export function chooseLanguage({
  query,
  cookie,
  acceptLanguage,
  fallback,
}: {
  query: string | null | undefined;
  cookie: string | undefined;
  acceptLanguage: string | undefined;
  fallback: Language;
}): Language {
  if (isLanguage(query)) return query;
  const saved = cookie
    ?.split(";")
    .map((part) => part.trim().split("="))
    .find(([name]) => name === "lang")?.[1];
  if (isLanguage(saved)) return saved;
  return fromAcceptLanguage(acceptLanguage) ?? fallback;
}
