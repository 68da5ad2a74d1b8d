/**
 * Checks for JSON-RPC params. Each failure is an InvalidParamsError whose
 * message shops may match ("Invalid params: <reason>").
 */
import { PAYMENT_ID_PATTERN } from "../payments/ids.ts";
import { EVENT_TYPES, type EventType } from "../payments/lifecycle.ts";
import { InvalidParamsError } from "./jsonrpc.ts";

export type Params = Record<string, unknown>;

/** A URL the daemon may call or send a buyer to: absolute http(s). */
export function isValidPostbackUrl(value: unknown): value is string {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** `params[name]`, with a missing member and JSON null both meaning "not given". */
function given(params: Params, name: string): unknown {
  return Object.hasOwn(params, name) ? (params[name] ?? undefined) : undefined;
}

/** An optional string of 1 to `max` characters; `reason` is the error when it is not. */
export function optionalString(
  params: Params,
  name: string,
  { max, reason }: { max: number; reason: string },
): string | undefined {
  const value = given(params, name);
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw new InvalidParamsError(reason);
  }
  return value;
}

/** An optional whole JSON number from `min` to `max`. */
export function optionalInteger(
  params: Params,
  name: string,
  { min, max, reason }: { min: number; max: number; reason: string },
): number | undefined {
  const value = given(params, name);
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidParamsError(reason);
  }
  return value;
}

/** An optional absolute http(s) URL. */
export function optionalUrl(params: Params, name: string, reason: string): string | undefined {
  const value = given(params, name);
  if (value === undefined) return undefined;
  if (!isValidPostbackUrl(value)) throw new InvalidParamsError(reason);
  return value;
}

/**
 * Optional `postback_events`: a non-empty array of distinct event types
 * (payment.seen, payment.paid, …), the events this payment's postbacks
 * carry; `types` are those the daemon raises.
 */
export function optionalEventTypes(
  params: Params,
  name: string,
  types: readonly EventType[] = EVENT_TYPES,
): EventType[] | undefined {
  const value = given(params, name);
  if (value === undefined) return undefined;
  const reason = `invalid ${name}: expected a non-empty list of distinct event types from ${types.join(", ")}`;
  return distinctListOf(value, types, reason);
}

/**
 * Optional `networks`: a non-empty array of distinct names of the networks
 * the daemon watches (`names`), the only ones whose funds count.
 */
export function optionalNetworks(
  params: Params,
  name: string,
  names: readonly string[],
): string[] | undefined {
  const value = given(params, name);
  if (value === undefined) return undefined;
  const reason = `invalid ${name}: expected a non-empty list of distinct network names from ${names.join(", ")}`;
  return distinctListOf(value, names, reason);
}

/** `value` as a non-empty array of distinct members of `allowed`; else InvalidParamsError(reason). */
function distinctListOf<T extends string>(
  value: unknown,
  allowed: readonly T[],
  reason: string,
): T[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > allowed.length) {
    throw new InvalidParamsError(reason);
  }
  const known = (item: unknown): item is T => (allowed as readonly unknown[]).includes(item);
  if (!value.every(known) || new Set(value).size !== value.length) {
    throw new InvalidParamsError(reason);
  }
  return value;
}

/** A required payment id: 16 lowercase hex characters. */
export function paymentId(params: Params, name = "id"): string {
  const value = given(params, name);
  if (value === undefined) throw new InvalidParamsError(`missing ${name}`);
  if (typeof value !== "string" || !PAYMENT_ID_PATTERN.test(value)) {
    throw new InvalidParamsError(`invalid ${name}`);
  }
  return value;
}
