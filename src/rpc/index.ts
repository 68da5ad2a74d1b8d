/**
 * The private port: JSON-RPC 2.0 for the shop's server, behind an IP
 * allowlist and, when configured, API keys. Wire-compatible with the
 * original 0xBTCpay's `start_payment`; the other methods, batches and
 * notifications are additions.
 */
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type Clock, createClock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import type { Payments } from "../payments/index.ts";
import { type Allowlist, clientAddress } from "./allowlist.ts";
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

/** What createPrivateApp needs; everything optional is an addition of the merchant API. */
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
  clock?: Pick<Clock, "now"> | undefined;
  /** Methods besides the built-in ones, one entry each. */
  extraMethods?: readonly RpcMethod[] | undefined;
  /**
   * Postback controls: the SSRF guard for start_payment's postback_url and
   * `resend_postback`. Undefined (wire-format unit tests): URLs are checked
   * for syntax only and `resend_postback` is not offered.
   */
  postbacks?: PostbackControl | undefined;
};

type Env = { Bindings: HttpBindings; Variables: { apiKey: ApiKey | undefined } };

/** One call's outcome; undefined for a notification that gets no answer. */
type CallOutcome = { response: JsonRpcResponse; forbidden: boolean; notification: boolean };

/**
 * Builds the private port's app. Access: the caller's IP must be loopback or
 * in the allowlist (else 403 "Forbidden"); with API keys configured it also
 * needs a valid key (else 403 "Forbidden: missing API key" / "…invalid API
 * key") holding each called method's permission (else "Forbidden: missing
 * permission <p>": HTTP 403 for a single request, that call's error in a batch).
 */
export function createPrivateApp(options: PrivateAppOptions) {
  const { payments, allowlist, trustProxy, decimals, maxWholeTokens } = options;
  const clock = options.clock ?? createClock();
  const log = options.logger.child({ module: "rpc" });
  const keys = createApiKeyVerifier({ entries: options.apiKeys ?? [] });
  const methods = createMethodRegistry([
    ...builtinMethods({ payments, clock, decimals, maxWholeTokens, postbacks: options.postbacks }),
    ...(options.extraMethods ?? []),
  ]);
  const app = new Hono<Env>();

  const respond = (body: JsonRpcResponse | JsonRpcResponse[], status: 200 | 403 | 413 = 200) =>
    new Response(stringifyJson(body), {
      status,
      headers: { "content-type": "application/json" },
    });

  app.use(async (c, next) => {
    const peer = c.env?.incoming?.socket?.remoteAddress;
    const client = clientAddress({
      peer,
      forwardedFor: c.req.header("x-forwarded-for"),
      trustProxy,
    });
    if (!allowlist.allows(client)) {
      log.warn({ peer, client }, "private port: caller not in the allowlist");
      return respond(failure(new ForbiddenError(), null), 403);
    }
    if (keys.enabled) {
      const auth = await keys.verify(c.req.header("authorization"));
      if (!auth.ok) {
        log.warn({ peer, client, reason: auth.reason }, "private port: API key refused");
        return respond(failure(new ForbiddenError(auth.reason), null), 403);
      }
      c.set("apiKey", auth.key);
    }
    await next();
  });

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

  app.post(
    "/",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => respond(failure({ code: -32600, message: "Request too large" }, null), 413),
    }),
    async (c) => {
      const text = await c.req.text();
      let request: unknown;
      try {
        request = JSON.parse(text);
      } catch {
        return respond(failure(PARSE_ERROR, null));
      }
      const apiKey = c.get("apiKey");
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
        return responses.length > 0 ? respond(responses) : c.body(null, 204);
      }
      const outcome = await execute(request, text, [], apiKey);
      // A refused permission is an access error: 403 with its body, even for a notification.
      if (outcome.forbidden) return respond(outcome.response, 403);
      return outcome.notification ? c.body(null, 204) : respond(outcome.response);
    },
  );

  app.all("*", (c) => c.json({ error: "not found" }, 404));
  app.onError((error) => {
    log.error({ err: error }, "private port: unhandled error");
    return respond(failure(INTERNAL_ERROR, null));
  });
  return app;
}
