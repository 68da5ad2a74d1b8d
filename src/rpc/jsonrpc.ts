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

/** A method's way of saying the params are wrong: "Invalid params: <reason>". */
export class InvalidParamsError extends Error {
  readonly code = INVALID_PARAMS;
  constructor(reason: string) {
    super(`Invalid params: ${reason}`);
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
  method: string;
  params: unknown;
};

/**
 * Checks the envelope as the original does: `jsonrpc: "2.0"`, `id`, `method`
 * and `params` must all be present.
 */
export function validateEnvelope(request: unknown): ValidRequest | undefined {
  if (typeof request !== "object" || request === null || Array.isArray(request)) return undefined;
  const r = request as Record<string, unknown>;
  if (r.jsonrpc !== "2.0") return undefined;
  if (!("id" in r) || !(typeof r.id === "string" || typeof r.id === "number" || r.id === null)) {
    return undefined;
  }
  if (typeof r.method !== "string") return undefined;
  if (!("params" in r) || typeof r.params !== "object" || r.params === null) return undefined;
  return { id: r.id as JsonRpcId, method: r.method, params: r.params };
}
