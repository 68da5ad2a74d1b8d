/**
 * IP matching, shared by every room that judges an address: who may call the
 * private port (loopback always, as in the original 0xBTCpay, plus the
 * configured IPs and CIDR ranges), which proxies are trusted for
 * X-Forwarded-For on both ports, which postback targets the SSRF guard lets
 * through, and the public port's per-IP rate limit.
 */
import ipaddr from "ipaddr.js";

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * Parses one address strictly: four-part decimal IPv4 or IPv6. The lenient
 * forms ipaddr.js (like inet_aton) also accepts, "10.0.0" or "0x7f000001",
 * are refused: in an allowlist they only hide what is really allowed.
 */
function parseStrict(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (text.includes(":")) return ipaddr.IPv6.isValid(text) ? ipaddr.IPv6.parse(text) : undefined;
  return ipaddr.IPv4.isValidFourPartDecimal(text) ? ipaddr.IPv4.parse(text) : undefined;
}

/** Parses "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8"; undefined if it is neither. */
export function parseCidr(entry: string): Cidr | undefined {
  const [addressText = "", bitsText, ...rest] = entry.trim().split("/");
  if (rest.length > 0) return undefined;
  const address = parseStrict(addressText);
  if (!address) return undefined;
  const maxBits = address.kind() === "ipv4" ? 32 : 128;
  if (bitsText === undefined) return [address, maxBits];
  if (!/^[0-9]{1,3}$/.test(bitsText) || Number(bitsText) > maxBits) return undefined;
  return [address, Number(bitsText)];
}

/** Parses an IP, folding IPv4-mapped IPv6 (`::ffff:127.0.0.1`) to IPv4. */
export function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const address = parseStrict(text.trim());
  if (address?.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}

function inRange(address: ipaddr.IPv4 | ipaddr.IPv6, [range, bits]: Cidr): boolean {
  let candidate = address;
  let network = range;
  if (network.kind() === "ipv6" && (network as ipaddr.IPv6).isIPv4MappedAddress()) {
    network = (network as ipaddr.IPv6).toIPv4Address();
    bits = Math.max(0, bits - 96);
  }
  if (candidate.kind() !== network.kind()) {
    if (candidate.kind() === "ipv4" && network.kind() === "ipv6") {
      candidate = (candidate as ipaddr.IPv4).toIPv4MappedAddress();
    } else {
      return false;
    }
  }
  return candidate.match(network, bits);
}

export type Allowlist = {
  /** Whether `peer` (a socket's remote address) may call the private port. */
  allows(peer: string | undefined): boolean;
};

/**
 * Builds the matcher. Entries are validated at config load; an unparsable one
 * here is a programming error and throws.
 */
export function createAllowlist({
  allow,
  loopback = true,
}: {
  allow: readonly string[];
  /** Whether loopback is always allowed (the original's rule); tests may turn it off. */
  loopback?: boolean;
}): Allowlist {
  const ranges = allow.map((entry) => {
    const cidr = parseCidr(entry);
    if (!cidr) throw new Error(`invalid allowlist entry: ${entry}`);
    return cidr;
  });
  return {
    allows(peer) {
      if (peer === undefined) return false;
      const address = parseIp(peer);
      if (!address) return false;
      if (loopback && address.range() === "loopback") return true;
      return ranges.some((range) => inRange(address, range));
    },
  };
}

/**
 * The client address to judge: the TCP peer, unless the peer is a trusted
 * proxy, then the right-most X-Forwarded-For entry that is not itself trusted.
 */
export function clientAddress({
  peer,
  forwardedFor,
  trustProxy,
}: {
  peer: string | undefined;
  forwardedFor: string | undefined;
  trustProxy: Allowlist | undefined;
}): string | undefined {
  if (!trustProxy || !forwardedFor || !trustProxy.allows(peer)) return peer;
  const hops = forwardedFor
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => hop.length > 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i];
    if (hop === undefined) continue;
    if (!parseIp(hop)) return undefined;
    if (!trustProxy.allows(hop)) return hop;
  }
  return hops[0];
}
