/**
 * The private port: JSON-RPC 2.0 for the shop's server, behind an IP
 * allowlist and, when configured, API keys. Wire-compatible with the
 * original 0xBTCpay's `start_payment`; the other methods, batches and
 * notifications are additions.
 *
 * Like the public port, it is a plain node:http listener: every checkout of
 * the shop goes through it, and a framework's Request/Response objects,
 * abort signals and web streams cost a third of its CPU per call. Tests
 * call that same listener over a real socket.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Allowlist, clientAddress } from "../internal/allowlist.ts";
import type { Logger } from "../internal/logger.ts";
import type { Payments } from "../payments/index.ts";
import { type ApiKey, type ApiKeyEntry, createApiKeyVerifier } from "./api-keys.ts";
import {
  ForbiddenError,
  failure,
  INTERNAL_ERROR,
  INVALID_REQUEST,
  idOf,
  JsonRpcError,
  type JsonRpcResponse,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  success,
  validateEnvelope,
} from "./jsonrpc.ts";
import { builtinMethods, type PostbackControl } from "./methods/index.ts";

export type { PostbackControl };

import type { Params } from "./params.ts";
import { rawMember, stringifyJson } from "./raw-json.ts";
import { createMethodRegistry, type RpcMethod } from "./registry.ts";

export { isValidPostbackUrl } from "./params.ts";
export type { RpcContext, RpcMethod } from "./registry.ts";

/** Largest request body the private port reads (a chunked body is counted as it arrives). */
export const MAX_BODY_BYTES = 64 * 1024;

/** Most calls in one batch. NOTE: bounds the work one request can cause (each start_payment derives an address). */
export const MAX_BATCH_CALLS = 100;

/** What the private port needs; everything optional is an addition of the merchant API. */
export type PrivateAppOptions = {
  payments: Payments;
  allowlist: Allowlist;
  /** Proxies whose X-Forwarded-For is believed; undefined: only the TCP peer counts. */
  trustProxy?: Allowlist | undefined;
  decimals: number;
  maxWholeTokens: bigint;
  logger: Logger;
  /** `private.apiKeys`; none (the default): callers are judged by IP only, as in the original. */
  apiKeys?: readonly ApiKeyEntry[] | undefined;
  /** Methods besides the built-in ones, one entry each. */
  extraMethods?: readonly RpcMethod[] | undefined;
  /**
   * Postback controls: the SSRF guard for start_payment's postback_url and
   * `resend_postback`. Undefined (wire-format unit tests): URLs are checked
   * for syntax only and `resend_postback` is not offered.
   */
  postbacks?: PostbackControl | undefined;
  /** The hosted checkout page of a payment (`checkout_url` in results); undefined: none. */
  checkoutUrlOf?: ((id: string) => string) | undefined;
};

/** One call's outcome. */
type CallOutcome = { response: JsonRpcResponse; forbidden: boolean; notification: boolean };

/** What the handler needs of a request besides its body. */
export type PrivateRequest = {
  method: string;
  /** The path without the query string. */
  path: string;
  peer: string | undefined;
  forwardedFor: string | undefined;
  authorization: string | undefined;
};

export type PrivateResponse = {
  status: number;
  headers: Record<string, string>;
  /** null: no body (204). */
  body: string | null;
};

/** Reads the request body; TOO_LARGE once it passes {@link MAX_BODY_BYTES}. */
export type BodyReader = () => Promise<string | typeof TOO_LARGE>;
export const TOO_LARGE = Symbol("request body too large");

const JSON_HEADERS = { "content-type": "application/json" } as const;
const NO_CONTENT: PrivateResponse = { status: 204, headers: {}, body: null };

const respond = (
  body: JsonRpcResponse | JsonRpcResponse[],
  status: 200 | 403 | 413 = 200,
): PrivateResponse => ({ status, headers: JSON_HEADERS, body: stringifyJson(body) });

const NOT_FOUND: PrivateResponse = {
  status: 404,
  headers: JSON_HEADERS,
  body: JSON.stringify({ error: "not found" }),
};

/** Answers 413 and closes the connection: the rest of the body is not wanted. */
const TOO_LARGE_RESPONSE: PrivateResponse = {
  ...respond(failure({ code: -32600, message: "Request too large" }, null), 413),
  headers: { ...JSON_HEADERS, connection: "close" },
};

/**
 * Builds the private port's handler. Access: the caller's IP must be loopback
 * or in the allowlist (else 403 "Forbidden"); with API keys configured it
 * also needs a valid key (else 403 "Forbidden: missing API key" / "…invalid
 * API key") holding each called method's permission (else "Forbidden:
 * missing permission <p>": HTTP 403 for a single request, that call's error
 * in a batch). Access is decided before the body is read; only `POST /`
 * exists (else 404).
 */
export function createPrivateHandler(
  options: PrivateAppOptions,
): (request: PrivateRequest, readBody: BodyReader) => Promise<PrivateResponse> {
  const { payments, allowlist, trustProxy, decimals, maxWholeTokens } = options;
  const log = options.logger.child({ module: "rpc" });
  const keys = createApiKeyVerifier({ entries: options.apiKeys ?? [] });
  const methods = createMethodRegistry([
    ...builtinMethods({
      payments,
      decimals,
      maxWholeTokens,
      postbacks: options.postbacks,
      checkoutUrlOf: options.checkoutUrlOf,
    }),
    ...(options.extraMethods ?? []),
  ]);

  /** Runs one call of the body; `path` locates it in `text` (a batch index, or none). */
  async function execute(
    request: unknown,
    text: string,
    path: number[],
    apiKey: ApiKey | undefined,
  ): Promise<CallOutcome> {
    const envelope = validateEnvelope(request);
    if (!envelope) {
      return {
        response: failure(INVALID_REQUEST, idOf(request)),
        forbidden: false,
        notification: false,
      };
    }
    const { id, notification } = envelope;
    const outcome = (response: JsonRpcResponse, forbidden = false): CallOutcome => ({
      response,
      forbidden,
      notification,
    });
    const method = methods.get(envelope.method);
    if (!method) return outcome(failure(METHOD_NOT_FOUND, id));
    if (keys.enabled && !apiKey?.permissions.has(method.permission)) {
      log.warn(
        { api_key: apiKey?.name, method: method.name, permission: method.permission },
        "private port: API key lacks the permission",
      );
      return outcome(
        failure(new ForbiddenError(`missing permission ${method.permission}`), id),
        true,
      );
    }
    const params = (Array.isArray(envelope.params) ? {} : envelope.params) as Params;
    try {
      const result = await method.handler(params, {
        rawParam: (name) => rawMember(text, [...path, "params", name]),
        apiKey,
        log,
      });
      return outcome(success(result, id));
    } catch (error) {
      if (error instanceof JsonRpcError) return outcome(failure(error, id));
      log.error({ err: error, method: method.name }, "JSON-RPC method failed");
      return outcome(failure(INTERNAL_ERROR, id));
    }
  }

  /** The JSON-RPC body: one call or a batch. */
  async function dispatch(text: string, apiKey: ApiKey | undefined): Promise<PrivateResponse> {
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      return respond(failure(PARSE_ERROR, null));
    }
    if (Array.isArray(request)) {
      if (request.length === 0) return respond(failure(INVALID_REQUEST, null));
      if (request.length > MAX_BATCH_CALLS) {
        return respond(
          failure({ code: -32600, message: "Invalid request: batch too large" }, null),
        );
      }
      // NOTE: calls run one after another, in order: a later call sees an earlier one's payment.
      const responses: JsonRpcResponse[] = [];
      for (const [index, call] of request.entries()) {
        const outcome = await execute(call, text, [index], apiKey);
        if (!outcome.notification) responses.push(outcome.response);
      }
      return responses.length > 0 ? respond(responses) : NO_CONTENT;
    }
    const outcome = await execute(request, text, [], apiKey);
    // A refused permission is an access error: 403 with its body, even for a notification.
    if (outcome.forbidden) return respond(outcome.response, 403);
    return outcome.notification ? NO_CONTENT : respond(outcome.response);
  }

  return async (request, readBody) => {
    try {
      const client = clientAddress({
        peer: request.peer,
        forwardedFor: request.forwardedFor,
        trustProxy,
      });
      if (!allowlist.allows(client)) {
        log.warn({ peer: request.peer, client }, "private port: caller not in the allowlist");
        return respond(failure(new ForbiddenError(), null), 403);
      }
      let apiKey: ApiKey | undefined;
      if (keys.enabled) {
        const auth = await keys.verify(request.authorization);
        if (!auth.ok) {
          log.warn(
            { peer: request.peer, client, reason: auth.reason },
            "private port: API key refused",
          );
          return respond(failure(new ForbiddenError(auth.reason), null), 403);
        }
        apiKey = auth.key;
      }
      if (request.method !== "POST" || request.path !== "/") return NOT_FOUND;
      const text = await readBody();
      if (text === TOO_LARGE) return TOO_LARGE_RESPONSE;
      return await dispatch(text, apiKey);
    } catch (error) {
      log.error({ err: error }, "private port: unhandled error");
      return respond(failure(INTERNAL_ERROR, null));
    }
  };
}

/** A declared Content-Length over the limit: refused before reading anything. */
function declaredTooLarge(contentLength: string | null | undefined): boolean {
  return contentLength != null && Number(contentLength) > MAX_BODY_BYTES;
}

/** The UTF-8 text of a body; a leading byte order mark is dropped, as fetch's text() does. */
function decodeBody(bytes: Buffer): string {
  const text = bytes.toString("utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Reads a node request's body, counting bytes as they arrive (chunked bodies included). */
function readNodeBody(req: IncomingMessage): Promise<string | typeof TOO_LARGE> {
  if (declaredTooLarge(req.headers["content-length"])) return Promise.resolve(TOO_LARGE);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Stop keeping it; node discards the rest once the 413 is sent.
        req.off("data", onData);
        req.off("end", onEnd);
        req.resume();
        resolve(TOO_LARGE);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () =>
      resolve(decodeBody(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", reject);
  });
}

function send(req: IncomingMessage, res: ServerResponse, out: PrivateResponse): void {
  if (out.body === null) {
    res.writeHead(out.status, out.headers);
    res.end();
    return;
  }
  res.setHeader("content-length", Buffer.byteLength(out.body));
  res.writeHead(out.status, out.headers);
  res.end(req.method === "HEAD" ? undefined : out.body);
}

/** The private port as a node:http request listener (what the daemon serves). */
export function createPrivateListener(
  options: PrivateAppOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = createPrivateHandler(options);
  return (req, res) => {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const forwarded = req.headers["x-forwarded-for"];
    void handle(
      {
        method: req.method ?? "GET",
        path: query === -1 ? url : url.slice(0, query),
        peer: req.socket.remoteAddress,
        forwardedFor: Array.isArray(forwarded) ? forwarded.join(",") : forwarded,
        authorization: req.headers.authorization,
      },
      () => readNodeBody(req),
    )
      .then((out) => send(req, res, out))
      .catch(() => res.destroy());
  };
}

/** A private request's route as the metrics label it: `/` (JSON-RPC) or `other`. */
export function privateRouteOf(_method: string, path: string): string {
  return path === "/" ? "/" : "other";
}
