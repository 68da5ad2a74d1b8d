/**
 * JSON-RPC 2.0 envelopes with the exact codes and messages of the original
 * 0xBTCpay (shops match on the text).
 */

export type JsonRpcId = string | number | null;

export const PARSE_ERROR = { code: -32700, message: "Parse error" } as const;
export const INVALID_REQUEST = { code: -32600, message: "Invalid request" } as const;
export const METHOD_NOT_FOUND = { code: -32601, message: "Method not found" } as const;
export const INVALID_PARAMS = -32602;
export const FORBIDDEN = { code: -32001, message: "Forbidden" } as const;

export const INTERNAL_ERROR = { code: -32603, message: "Internal error" } as const;

/** An error a method answers with: its `code` and `message` go on the wire as they are. */
export class JsonRpcError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A method's way of saying the params are wrong: "Invalid params: <reason>". */
export class InvalidParamsError extends JsonRpcError {
  constructor(reason: string) {
    super(INVALID_PARAMS, `Invalid params: ${reason}`);
  }
}

/**
 * Access refused: "Forbidden" (the caller's IP, as in the original), or
 * "Forbidden: <reason>" (API key missing, invalid, or without a permission).
 * Answered with HTTP 403.
 */
export class ForbiddenError extends JsonRpcError {
  constructor(reason?: string) {
    super(FORBIDDEN.code, reason === undefined ? FORBIDDEN.message : `Forbidden: ${reason}`);
  }
}

export type JsonRpcResponse =
  | { jsonrpc: "2.0"; result: unknown; id: JsonRpcId }
  | { jsonrpc: "2.0"; error: { code: number; message: string }; id: JsonRpcId };

export function success(result: unknown, id: JsonRpcId): JsonRpcResponse {
  return { jsonrpc: "2.0", result, id };
}

export function failure(error: { code: number; message: string }, id: JsonRpcId): JsonRpcResponse {
  return { jsonrpc: "2.0", error: { code: error.code, message: error.message }, id };
}

/** The request's id if it is a valid JSON-RPC id, else null (for error responses). */
export function idOf(request: unknown): JsonRpcId {
  if (typeof request !== "object" || request === null || Array.isArray(request)) return null;
  const id = (request as { id?: unknown }).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

export type ValidRequest = {
  id: JsonRpcId;
  /** No `id` member: a JSON-RPC 2.0 notification, executed without a response. */
  notification: boolean;
  method: string;
  params: unknown;
};

/**
 * Checks the envelope as the original does: `jsonrpc: "2.0"`, `method` and
 * `params` (an object or array) must be present, and `id`, if present, a
 * string, number or null. A request without an `id` member is a notification
 * (JSON-RPC 2.0 §4.1); the original refused it, but its shops always send an id.
 */
export function validateEnvelope(request: unknown): ValidRequest | undefined {
  if (typeof request !== "object" || request === null || Array.isArray(request)) return undefined;
  const r = request as Record<string, unknown>;
  if (r.jsonrpc !== "2.0") return undefined;
  const notification = !("id" in r);
  if (!notification && !(typeof r.id === "string" || typeof r.id === "number" || r.id === null)) {
    return undefined;
  }
  if (typeof r.method !== "string") return undefined;
  if (!("params" in r) || typeof r.params !== "object" || r.params === null) return undefined;
  return {
    id: notification ? null : (r.id as JsonRpcId),
    notification,
    method: r.method,
    params: r.params,
  };
}
