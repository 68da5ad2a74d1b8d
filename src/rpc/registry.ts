/**
 * The private port's methods as plain entries: a name, the permission an API
 * key needs for it, and a handler. Adding a method is adding an entry.
 */
import type { Logger } from "../internal/logger.ts";
import type { ApiKey, Permission } from "./api-keys.ts";
import type { Params } from "./params.ts";

/** What a handler gets besides its params. */
export type RpcContext = {
  /**
   * The exact source text of `params[name]` in the request body (for a batch,
   * of this call), so values like the shop's `data` are kept byte for byte.
   */
  rawParam(name: string): string | undefined;
  /** The key that authorized the call; undefined when no keys are configured. */
  apiKey: ApiKey | undefined;
  /** The `{module: "rpc"}` logger. */
  log: Logger;
};

export type RpcMethod = {
  name: string;
  /** Needed by the caller's API key when keys are configured. */
  permission: Permission;
  /**
   * Params are by name: an array `params` arrives as `{}`. Throw a
   * JsonRpcError (e.g. InvalidParamsError) for an error the caller should
   * see; anything else is logged and answered "Internal error".
   */
  handler(params: Params, context: RpcContext): unknown;
};

export type MethodRegistry = {
  get(name: string): RpcMethod | undefined;
  names(): string[];
};

/** Indexes `methods` by name; a name given twice is a programming error and throws. */
export function createMethodRegistry(methods: readonly RpcMethod[]): MethodRegistry {
  const byName = new Map<string, RpcMethod>();
  for (const method of methods) {
    if (byName.has(method.name)) throw new Error(`JSON-RPC method defined twice: ${method.name}`);
    byName.set(method.name, method);
  }
  return {
    // NOTE: a Map, so "__proto__" or "constructor" are simply not found.
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
  };
}
