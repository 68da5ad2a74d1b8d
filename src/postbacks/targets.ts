/**
 * SSRF guard: a postback URL must not aim the daemon at the shop's internal
 * network, its cloud metadata service or the daemon's own host. Addresses
 * are classified with ipaddr.js's ranges; names are resolved and every
 * address checked, and the HTTP client connects only to an address that
 * was checked (so a DNS answer that changes between check and connect,
 * "rebinding", cannot slip through).
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, buildConnector, type Dispatcher } from "undici";
import { createAllowlist } from "../internal/allowlist.ts";
import { BaseError } from "../internal/errors.ts";

/** A postback target that the guard refuses (the attempt fails; no connection is made). */
export class PostbackTargetError extends BaseError {
  static override code = "POSTBACK_TARGET_NOT_ALLOWED";
  /** Why, e.g. "shop.example resolves to 10.0.0.5 (private)". */
  readonly reason: string;
  constructor(reason: string) {
    super(`target not allowed: ${reason}`);
    this.reason = reason;
  }
}

export type ResolvedAddress = { address: string; family: number };

/** Resolves a host name to all its addresses (injectable: tests never use real DNS). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The operating system's resolver (getaddrinfo), all addresses, in its order. */
export const systemResolver: Resolver = (hostname) =>
  lookup(hostname, { all: true, verbatim: true });

export type TargetVerdict = { allowed: true } | { allowed: false; reason: string };

const v4 = (ip: ipaddr.IPv6, first: number): ipaddr.IPv4 => {
  const parts = ip.parts;
  const hi = parts[first] ?? 0;
  const lo = parts[first + 1] ?? 0;
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
};

/**
 * Why an address may not be a postback target by default (ipaddr.js range
 * name, e.g. "loopback", "private", "ipv4Mapped loopback"), or undefined for
 * a public unicast address. IPv6 forms that carry an IPv4 address
 * (IPv4-mapped, IPv4-translated, NAT64 64:ff9b::/96, 6to4 2002::/16) are
 * judged by the IPv4 address they carry.
 */
export function blockedRange(address: ipaddr.IPv4 | ipaddr.IPv6): string | undefined {
  if (address.kind() === "ipv4") {
    const range = address.range();
    return range === "unicast" ? undefined : range;
  }
  const ip = address as ipaddr.IPv6;
  const range = ip.range();
  const parts = ip.parts;
  const carried = (inner: ipaddr.IPv4) => {
    const innerRange = blockedRange(inner);
    return innerRange === undefined ? undefined : `${range} ${innerRange}`;
  };
  switch (range) {
    case "ipv4Mapped":
    case "rfc6145":
      return carried(v4(ip, 6));
    case "rfc6052":
      // 64:ff9b::/96 carries the IPv4 address in its last 32 bits; the
      // local-use 64:ff9b:1::/48 is a private network's own translator.
      return parts.slice(2, 6).every((part) => part === 0) ? carried(v4(ip, 6)) : range;
    case "6to4":
      return carried(v4(ip, 1));
    case "unicast":
      // ::a.b.c.d, the deprecated IPv4-compatible form, has no range of its own.
      return parts.slice(0, 6).every((part) => part === 0) ? "ipv4Compatible" : undefined;
    default:
      // loopback, linkLocal, uniqueLocal, multicast, unspecified, teredo,
      // reserved (documentation 2001:db8::/32 …), discard, benchmarking, …
      return range;
  }
}

/** Parses a canonical IP address (as DNS or the WHATWG URL parser give them). */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const family = isIP(text);
  if (family === 4) return ipaddr.IPv4.parse(text);
  if (family === 6) return ipaddr.IPv6.parse(text);
  return undefined;
}

export type TargetPolicy = {
  /** Whether the daemon may connect to `address` (an IP address). */
  check(address: string): TargetVerdict;
};

/**
 * The policy: an address in `allowTargets` (CIDRs, e.g. a shop on the same
 * private network) is allowed; otherwise only public unicast addresses are.
 */
export function createTargetPolicy({
  allowTargets = [],
}: {
  allowTargets?: readonly string[];
} = {}): TargetPolicy {
  const allowlist = createAllowlist({ allow: allowTargets, loopback: false });
  return {
    check(text) {
      const address = parseAddress(text);
      if (!address) return { allowed: false, reason: `${text} is not an IP address` };
      if (allowlist.allows(text)) return { allowed: true };
      const range = blockedRange(address);
      if (range === undefined) return { allowed: true };
      return { allowed: false, reason: `${text} (${range})` };
    },
  };
}

/**
 * The host of a URL as the WHATWG parser normalised it, brackets removed:
 * `http://0x7f000001/`, `http://2130706433/`, `http://127.1/` and
 * `http://017700000001/` all have the host "127.0.0.1". Undefined if the
 * URL does not parse.
 */
export function normalizedHost(url: string): string | undefined {
  try {
    const { hostname } = new URL(url);
    return hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  } catch {
    return undefined;
  }
}

/**
 * Judges a URL whose host is an IP literal, without any I/O; undefined when
 * the host is a name (it must be resolved first). For the table tests and
 * for start_payment.
 */
export function checkLiteralTarget(url: string, policy: TargetPolicy): TargetVerdict | undefined {
  const host = normalizedHost(url);
  if (host === undefined) return { allowed: false, reason: "not a URL" };
  if (isIP(host) === 0) return undefined;
  return policy.check(host);
}

/**
 * Resolves `hostname` (or takes it as is if it is an IP), checks every
 * address, and returns the one to connect to. Throws PostbackTargetError if
 * any address is refused, other errors if the name does not resolve.
 */
async function resolveChecked(
  hostname: string,
  policy: TargetPolicy,
  resolve: Resolver,
): Promise<string> {
  const addresses = isIP(hostname) ? [hostname] : (await resolve(hostname)).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`${hostname} has no address`);
  for (const address of addresses) {
    const verdict = policy.check(address);
    if (!verdict.allowed) {
      const via = address === hostname ? "" : `${hostname} resolves to `;
      throw new PostbackTargetError(`${via}${verdict.reason}`);
    }
  }
  // Every address passed; connect to the first, in the resolver's order.
  return addresses[0] as string;
}

export type TargetGuard = {
  /**
   * Whether a URL's target is allowed now (start_payment). A name that does
   * not resolve is allowed here: delivery checks again when it connects.
   */
  checkUrl(url: string): Promise<TargetVerdict>;
  /** An undici dispatcher that connects only to checked addresses. */
  dispatcher: Dispatcher;
  close(): Promise<void>;
};

/**
 * The guard: `checkUrl` for early refusal, and a dispatcher whose `connect`
 * resolves the host, checks every address (raw IP hosts too, which a DNS
 * `lookup` hook never sees) and connects to the checked address. TLS still
 * verifies the certificate against the URL's host name.
 */
export function createTargetGuard({
  allowTargets = [],
  resolve = systemResolver,
  connectTimeoutMs = 15_000,
  resolveTimeoutMs = 5_000,
}: {
  allowTargets?: readonly string[];
  resolve?: Resolver;
  connectTimeoutMs?: number;
  resolveTimeoutMs?: number;
}): TargetGuard {
  const policy = createTargetPolicy({ allowTargets });
  const base = buildConnector({ timeout: connectTimeoutMs });
  const connect: buildConnector.connector = (options, callback) => {
    resolveChecked(options.hostname, policy, resolve).then(
      (address) => base({ ...options, hostname: address }, callback),
      (error: Error) => callback(error, null),
    );
  };
  const dispatcher = new Agent({ connect });

  return {
    async checkUrl(url) {
      const literal = checkLiteralTarget(url, policy);
      if (literal !== undefined) return literal;
      const host = normalizedHost(url) as string;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          resolveChecked(host, policy, resolve),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error("resolve timeout")), resolveTimeoutMs);
          }),
        ]);
        return { allowed: true };
      } catch (error) {
        if (error instanceof PostbackTargetError) return { allowed: false, reason: error.reason };
        return { allowed: true };
      } finally {
        clearTimeout(timer);
      }
    },
    dispatcher,
    close: () => dispatcher.close(),
  };
}
