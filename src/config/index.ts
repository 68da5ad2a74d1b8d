/**
 * Configuration: one JSON file plus a few secrets from the environment,
 * validated once with zod. Every problem is reported as "key: problem".
 */
import { readFileSync } from "node:fs";
import { isAddress } from "viem";
import { z } from "zod";
import { MAINNET_0XBTC, POLYGON_0XBTC } from "../../contracts-abi/index.ts";
import { parseExtendedPublicKey } from "../addresses/index.ts";
import { parseCidr } from "../internal/allowlist.ts";
import { ConfigError, errorMessage } from "../internal/errors.ts";
import { parseAmount } from "../payments/amount.ts";
import {
  ALL_EVENT_TYPES,
  DEFAULT_EVENT_TYPES,
  NETWORK_EVENT_TYPES,
} from "../payments/lifecycle.ts";
import { DEFAULT_RETRY_SCHEDULE_MS } from "../postbacks/schedule.ts";
import { secretKey } from "../postbacks/sign.ts";
import { PERMISSIONS, parseKeyHash } from "../rpc/api-keys.ts";
import { LEGACY_NETWORK } from "../store/storage.ts";

/**
 * Environment variables that may replace a key of the file (secrets stay out
 * of files). With `networks`, each network's RPC URL comes from
 * `OXBTCPAY_RPC_URL_<NAME>` instead (see {@link RPC_URL_ENV_PREFIX}).
 */
export const ENV_OVERRIDES = {
  OXBTCPAY_XPUB: ["wallet", "xpub"],
  OXBTCPAY_RPC_URL: ["chain", "rpcUrl"],
  OXBTCPAY_POSTBACK_SECRET: ["postbacks", "secret"],
  OXBTCPAY_POSTBACK_PREVIOUS_SECRETS: ["postbacks", "previousSecrets"],
  OXBTCPAY_DATABASE_URL: ["database", "url"],
} as const;

/**
 * `OXBTCPAY_RPC_URL_<NAME>` replaces `networks[i].rpcUrl` of the network
 * named `<name>` (upper case): `OXBTCPAY_RPC_URL_POLYGON`.
 */
export const RPC_URL_ENV_PREFIX = "OXBTCPAY_RPC_URL_";

/** The variable that holds the RPC URL of network `name`: `OXBTCPAY_RPC_URL_POLYGON`. */
export function rpcUrlEnvOf(name: string): string {
  return `${RPC_URL_ENV_PREFIX}${name.toUpperCase()}`;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses "90s", "15m", "24h", "7d" or a number of seconds into seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = /^([0-9]{1,9})(s|m|h|d)$/.exec(value);
  if (!match) return undefined;
  const seconds = Number(match[1]) * (DURATION_UNITS[match[2] ?? "s"] ?? 1);
  return seconds > 0 ? seconds : undefined;
}

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    ctx.addIssue({
      code: "custom",
      message: 'expected a duration such as "15m", "24h", "7d" or a whole number of seconds',
    });
    return z.NEVER;
  }
  return seconds;
});

const DELAY_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Longest single step of the postback retry schedule. */
const MAX_RETRY_DELAY_MS = 30 * 86_400_000;

/** Parses "250ms", "5s", "30m", "2h", "1d" or a number of seconds into milliseconds (0 allowed). */
export function parseDelayMs(value: string | number): number | undefined {
  const ms =
    typeof value === "number"
      ? Number.isInteger(value) && value >= 0
        ? value * 1000
        : undefined
      : (() => {
          const match = /^([0-9]{1,9})(ms|s|m|h|d)$/.exec(value);
          return match ? Number(match[1]) * (DELAY_UNITS[match[2] ?? "s"] ?? 1000) : undefined;
        })();
  return ms !== undefined && ms <= MAX_RETRY_DELAY_MS ? ms : undefined;
}

const retryDelay = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDelayMs(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message:
        'expected a delay such as "500ms", "5s", "30m", "2h" or a whole number of seconds, at most 30 days',
    });
    return z.NEVER;
  }
  return ms;
});

/** A readiness bound: "500ms", "30s", "3m", "1h" or a number of seconds; more than 0. */
const bound = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDelayMs(value);
  if (ms === undefined || ms === 0) {
    ctx.addIssue({
      code: "custom",
      message:
        'expected a duration such as "500ms", "30s", "3m" or a whole number of seconds, above 0',
    });
    return z.NEVER;
  }
  return ms;
});

// NOTE: the message never repeats the value: it is a secret.
const webhookSecret = z.string().refine((value) => secretKey(value) !== undefined, {
  message:
    'expected "whsec_" followed by the base64 of 24 to 64 random bytes (make one with `0xbtcpay secret`)',
});

/** A list of secrets: a JSON array, or one string of secrets separated by spaces or commas (env). */
const secretList = z.preprocess(
  (value) =>
    typeof value === "string" ? value.split(/[\s,]+/).filter((part) => part !== "") : value,
  z.array(webhookSecret).max(5),
);

/** A URL string whose scheme is one of `protocols` ("http:", "ws:", …). */
function urlOf(protocols: readonly string[], message: string) {
  return z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message },
  );
}

const httpUrl = urlOf(["http:", "https:"], "expected an http(s) URL");

const port = z.number().int().min(0).max(65_535);

const cidrList = z.array(z.string()).superRefine((entries, ctx) => {
  entries.forEach((entry, index) => {
    if (!parseCidr(entry)) {
      ctx.addIssue({
        code: "custom",
        path: [index],
        message: `"${entry}" is not an IP address or CIDR range`,
      });
    }
  });
});

const apiKeyList = z
  .array(
    z
      .object({
        name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, {
          message: "expected 1 to 64 letters, digits, dots, dashes or underscores",
        }),
        hash: z.string().refine((value) => parseKeyHash(value) !== undefined, {
          message:
            'expected "sha256:<64 hex digits>" or "scrypt:<N>:<r>:<p>:<salt>:<hash>" (the key\'s hash, never the key: see `0xbtcpay apikey create`)',
        }),
        permissions: z.array(z.enum(PERMISSIONS)).min(1),
      })
      .strict(),
  )
  .superRefine((entries, ctx) => {
    const names = new Set<string>();
    const hashes = new Set<string>();
    entries.forEach((entry, index) => {
      if (names.has(entry.name)) {
        ctx.addIssue({ code: "custom", path: [index, "name"], message: "duplicate key name" });
      }
      if (hashes.has(entry.hash)) {
        ctx.addIssue({ code: "custom", path: [index, "hash"], message: "duplicate key hash" });
      }
      names.add(entry.name);
      hashes.add(entry.hash);
    });
  });

/** WCAG relative luminance of a "#rrggbb" colour. */
function luminance(hex: string): number {
  const channel = (offset: number) => {
    const c = Number.parseInt(hex.slice(offset, offset + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

/** The checkout page's accent: buttons carry white text on it, so it must be dark enough (WCAG AA). */
const themeColor = z
  .string()
  .regex(/^#[0-9a-fA-F]{6}$/, { message: 'expected a colour as "#rrggbb"' })
  .refine((hex) => 1.05 / (luminance(hex) + 0.05) >= 4.5, {
    message: "too light: white text on it must have a contrast of at least 4.5:1 (WCAG AA)",
  })
  .transform((hex) => hex.toLowerCase());

/** An origin (scheme, host, port; no path) a shop embeds the checkout page from. */
const origin = z.string().refine(
  (value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "https:" || url.protocol === "http:") && url.origin === value;
    } catch {
      return false;
    }
  },
  { message: 'expected an origin such as "https://shop.example" (no path, no trailing slash)' },
);

/** Where shoppers reach the shop with questions: an http(s) URL or an e-mail address. */
const supportContact = z
  .string()
  .max(200)
  .refine(
    (value) => {
      if (/^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/.test(value)) return true;
      try {
        const url = new URL(value);
        return url.protocol === "https:" || url.protocol === "http:";
      } catch {
        return false;
      }
    },
    { message: "expected an http(s) URL or an e-mail address" },
  );

/**
 * Display names and block explorers of well-known chains, for the checkout
 * page, and where 0xBitcoin lives on them (a `networks` entry's default token).
 */
const KNOWN_CHAINS: Record<number, { name: string; explorerUrl?: string; token?: string }> = {
  1: { name: "Ethereum", explorerUrl: "https://etherscan.io", token: MAINNET_0XBTC },
  137: { name: "Polygon", explorerUrl: "https://polygonscan.com", token: POLYGON_0XBTC },
  31337: { name: "Local chain (anvil)" },
};

/** A chain's name as shoppers read it, when `chain.name` does not say. */
export function defaultChainName(chainId: number): string {
  return KNOWN_CHAINS[chainId]?.name ?? `Chain ${chainId}`;
}

/** A token contract address, stored lowercase. */
const tokenAddress = z
  .string()
  .refine((value) => isAddress(value, { strict: false }), {
    message: "expected a 0x-prefixed 20-byte address",
  })
  .transform((value) => value.toLowerCase());

/** What `chain` and every `networks` entry say about a network besides its name, RPC URL, chain id and token. */
const chainFields = {
  decimals: z.number().int().min(0).max(36).default(8),
  confirmations: z.number().int().min(1).max(1000).default(3),
  pollIntervalMs: z.number().int().min(50).max(600_000).default(2000),
  /** First block to scan on the very first start; default: the head at that moment. */
  startBlock: z.number().int().min(0).optional(),
  /** Largest eth_getLogs range, in blocks (shrunk on provider limits, grown back slowly). */
  maxBlockRange: z.number().int().min(1).max(1_000_000).default(2000),
  /**
   * Blocks deeper than this below the head are taken as final and scanned by
   * range; newer ones block by block with a parent-hash check (reorgs).
   */
  finalityDepth: z.number().int().min(1).max(10_000).default(64),
  /** Optional websocket endpoint: newHeads only wakes the poller early. */
  wsUrl: urlOf(["ws:", "wss:"], "expected a ws(s) URL").optional(),
  /** The token's symbol as shoppers read it. */
  symbol: z.string().trim().min(1).max(12).default("0xBTC"),
  /** A block explorer's base URL (`<url>/tx/<hash>`); default by chain id, else none. */
  explorerUrl: httpUrl.optional(),
};

/** The explorer URL a chain gets: the configured one, else the known chain's, without a trailing slash. */
function explorerOf(chainId: number, configured: string | undefined): { explorerUrl?: string } {
  const explorerUrl = (configured ?? KNOWN_CHAINS[chainId]?.explorerUrl)?.replace(/\/+$/, "");
  return explorerUrl === undefined ? {} : { explorerUrl };
}

/** The single-chain section of the original config: one network, named "ethereum". */
const chainSection = z
  .object({
    rpcUrl: httpUrl,
    chainId: z.number().int().positive(),
    token: tokenAddress.default(MAINNET_0XBTC),
    ...chainFields,
    /** The network's name as shoppers read it ("0xBTC on Ethereum"); default by chain id. */
    name: z.string().trim().min(1).max(40).optional(),
  })
  .strict()
  .transform(({ explorerUrl, ...chain }) => ({
    ...chain,
    name: chain.name ?? defaultChainName(chain.chainId),
    ...explorerOf(chain.chainId, explorerUrl),
  }));

/** A network's name: the key of its env variable, its metrics label, what `start_payment` accepts. */
export const NETWORK_NAME_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;

/** The decimals of 0xBTC on every network it lives on. */
export const TOKEN_DECIMALS = 8;

/** One entry of `networks`. */
const networkEntry = z
  .object({
    name: z.string().regex(NETWORK_NAME_PATTERN, {
      message:
        'expected a lowercase name such as "ethereum" or "polygon" (a letter, then letters, digits or underscores; at most 32)',
    }),
    rpcUrl: httpUrl,
    chainId: z.number().int().positive(),
    /** Default: 0xBitcoin's contract on a known chain (1, 137); required elsewhere. */
    token: tokenAddress.optional(),
    ...chainFields,
    /** The network's name as shoppers read it; default by chain id. */
    displayName: z.string().trim().min(1).max(40).optional(),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (entry.token === undefined && KNOWN_CHAINS[entry.chainId]?.token === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["token"],
        message: `is required: 0xbtcpay knows no 0xBTC contract on chain ${entry.chainId}`,
      });
    }
  })
  .transform(({ explorerUrl, displayName, token, ...entry }) => ({
    ...entry,
    token: token ?? (KNOWN_CHAINS[entry.chainId]?.token as string),
    displayName: displayName ?? defaultChainName(entry.chainId),
    ...explorerOf(entry.chainId, explorerUrl),
  }));

/** `networks`: each name and chain id once, every token with 0xBTC's 8 decimals. */
const networkList = z
  .array(networkEntry)
  .min(1)
  .max(16)
  .superRefine((entries, ctx) => {
    const names = new Map<string, number>();
    const chainIds = new Map<number, number>();
    entries.forEach((entry, index) => {
      const sameName = names.get(entry.name);
      if (sameName !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `duplicate network name "${entry.name}" (also networks.${sameName})`,
        });
      }
      const sameChain = chainIds.get(entry.chainId);
      if (sameChain !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [index, "chainId"],
          message: `chain id ${entry.chainId} is also networks.${sameChain}'s ("${entries[sameChain]?.name}"): each network once`,
        });
      }
      if (entry.decimals !== TOKEN_DECIMALS) {
        ctx.addIssue({
          code: "custom",
          path: [index, "decimals"],
          message: `is ${entry.decimals}, but a payment's amount is in 0xBTC, which has ${TOKEN_DECIMALS} decimals on every network: every network's token must have ${TOKEN_DECIMALS}`,
        });
      }
      names.set(entry.name, names.get(entry.name) ?? index);
      chainIds.set(entry.chainId, chainIds.get(entry.chainId) ?? index);
    });
  });

/** The `chain` section as the daemon reads it. */
export type ChainConfig = z.output<typeof chainSection>;

/**
 * One network the daemon watches, from a `networks` entry or from the
 * single `chain` section (then named "ethereum"; see {@link networksOf}).
 */
export type NetworkConfig = Omit<ChainConfig, "name"> & {
  /** "ethereum", "polygon": the network's name in the config, the database, metrics and the wire. */
  name: string;
  /** The network's name as shoppers read it ("Polygon"). */
  displayName: string;
  /** Where it sits in the config file, for messages: "chain" or "networks.1". */
  key: string;
};

export { LEGACY_NETWORK };

/** The public port's per-IP limit: `max` requests per `windowMs` (0: no limit). */
const RATE_LIMIT_DEFAULT = { windowMs: 60_000, max: 600 };
/** X-Forwarded-For is believed from a reverse proxy on the same host by default. */
const PUBLIC_TRUST_PROXY_DEFAULT = ["127.0.0.0/8", "::1"];

export const configSchema = z
  .object({
    /** The original single network; exactly one of `chain` and `networks` is given. */
    chain: chainSection.optional(),
    /** Several networks, one deposit address: each watched on its own. */
    networks: networkList.optional(),
    wallet: z
      .object({
        xpub: z.string().superRefine((value, ctx) => {
          try {
            parseExtendedPublicKey(value);
          } catch (error) {
            ctx.addIssue({ code: "custom", message: errorMessage(error) });
          }
        }),
      })
      .strict(),
    private: z
      .object({
        host: z.string().min(1).default("127.0.0.1"),
        port: port.default(8888),
        /** Callers allowed besides loopback (always allowed, as in the original). */
        allow: cidrList.default([]),
        /** Peers whose X-Forwarded-For is believed; empty: the TCP peer decides. */
        trustProxy: cidrList.default([]),
        /** API keys (hashes only); empty: callers are judged by IP only, as in the original. */
        apiKeys: apiKeyList.default([]),
      })
      .strict()
      .default({ host: "127.0.0.1", port: 8888, allow: [], trustProxy: [], apiKeys: [] }),
    public: z
      .object({
        host: z.string().min(1).default("0.0.0.0"),
        port: port.default(8080),
        rateLimit: z
          .object({
            windowMs: z.number().int().min(1000).max(3_600_000).default(60_000),
            max: z.number().int().min(0).max(1_000_000).default(600),
          })
          .strict()
          .default(RATE_LIMIT_DEFAULT),
        /** Peers whose X-Forwarded-For names the client for the rate limit. */
        trustProxy: cidrList.default(PUBLIC_TRUST_PROXY_DEFAULT),
        /**
         * The port's base URL as shoppers reach it (behind a proxy: the
         * proxy's), for `checkout_url`; default: the listener's own address.
         */
        url: httpUrl.transform((value) => value.replace(/\/+$/, "")).optional(),
        /** Open connections at most (SSE included); default: half the process's descriptor limit. */
        maxConnections: z.number().int().min(16).max(1_000_000).optional(),
        /** Open connections at most per client address (a trusted proxy's are not counted). */
        maxConnectionsPerIp: z.number().int().min(1).max(1_000_000).default(256),
        /** Time a client has to send a request's headers, in ms. */
        headersTimeoutMs: z.number().int().min(1000).max(120_000).default(10_000),
        /** How long an idle keep-alive connection stays open, in ms. */
        keepAliveTimeoutMs: z.number().int().min(1000).max(120_000).default(5_000),
      })
      .strict()
      .prefault({}),
    checkout: z
      .object({
        /** The shop's name on the page; none: "Payment". */
        shopName: z.string().trim().min(1).max(100).optional(),
        /** The page's language when neither the link, the shopper's choice nor the browser picks one. */
        language: z.enum(["en", "es"]).default("en"),
        /** Where shoppers ask: an http(s) URL or an e-mail address. */
        support: supportContact.optional(),
        /** After paid, send the shopper to `return_url` after this many seconds; unset: only a button. */
        redirectAfterPaidSeconds: z.number().int().min(0).max(300).optional(),
        /** Origins that may embed the page in a frame (CSP frame-ancestors); empty: none. */
        frameAncestors: z.array(origin).max(20).default([]),
        /** Accent colour of buttons and links. */
        themeColor: themeColor.default("#c2410c"),
      })
      .strict()
      .prefault({}),
    payments: z
      .object({
        expiresAfter: duration.default(86_400),
        /** How long after expiry late funds are still recorded (and flagged). */
        monitorFor: duration.default(7 * 86_400),
        /** Largest amount start_payment accepts, in whole tokens (0xBTC's supply cap). */
        maxAmount: z
          .string()
          .refine((value) => parseAmount(value, { decimals: 0, maxWholeTokens: 10n ** 30n }).ok, {
            message: "expected a whole number of tokens as a string",
          })
          .default("20999984"),
      })
      .strict()
      .default({ expiresAfter: 86_400, monitorFor: 7 * 86_400, maxAmount: "20999984" }),
    postbacks: z
      .object({
        /** Standard Webhooks signing secret; prefer OXBTCPAY_POSTBACK_SECRET. None: unsigned. */
        secret: webhookSecret.optional(),
        /** Secrets being rotated out: each postback also carries a signature with each. */
        previousSecrets: secretList.default([]),
        timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
        /** Delays before attempts 2, 3, … (ms after parsing); after the last, the event is failed. */
        retrySchedule: z
          .array(retryDelay)
          .max(50)
          .default([...DEFAULT_RETRY_SCHEDULE_MS]),
        /** Targets allowed despite the SSRF guard (e.g. a shop on the same private network). */
        allowTargets: cidrList.default([]),
        /** Postback attempts in flight at once (each for a different payment). */
        concurrency: z.number().int().min(1).max(64).default(8),
        /**
         * The events every payment's postbacks carry unless start_payment
         * chose its own (`postback_events`). Default: payment.paid only, as
         * the original: its shops treat ANY POST as "paid".
         */
        events: z
          .array(z.enum(ALL_EVENT_TYPES))
          .min(1)
          .refine((list) => new Set(list).size === list.length, { message: "duplicate event type" })
          .default([...DEFAULT_EVENT_TYPES]),
      })
      .strict()
      .superRefine((postbacks, ctx) => {
        if (postbacks.previousSecrets.length > 0 && postbacks.secret === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["previousSecrets"],
            message: "needs postbacks.secret (the new secret) during a rotation",
          });
        }
      })
      .default({
        previousSecrets: [],
        timeoutMs: 15_000,
        retrySchedule: [...DEFAULT_RETRY_SCHEDULE_MS],
        allowTargets: [],
        concurrency: 8,
        events: [...DEFAULT_EVENT_TYPES],
      }),
    /** The operations listener: /livez, /readyz, /metrics (src/ops/). */
    ops: z
      .object({
        /** false: no ops listener at all. */
        enabled: z.boolean().default(true),
        host: z.string().min(1).default("127.0.0.1"),
        port: port.default(9464),
        /** When /readyz answers 503. Unset bounds are derived from chain.* (see src/ops/readiness.ts). */
        ready: z
          .object({
            /** Most blocks the scan may be behind the head; default chain.confirmations + 5. */
            maxBlocksBehind: z.number().int().min(0).max(1_000_000).optional(),
            /** Longest time the head may stand still (ms after parsing). */
            maxHeadAge: bound.default(180_000),
            /** Longest time since the RPC node last answered (ms); default 60 s or 3 polls, the longer. */
            maxRpcAge: bound.optional(),
            /** Slowest acceptable answer of that last call (ms). */
            maxRpcLatency: bound.default(10_000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /**
     * Where payments are stored: `path`, a SQLite file (one daemon), or
     * `url`, a PostgreSQL database that several replicas share.
     */
    database: z
      .object({
        path: z.string().min(1).optional(),
        // NOTE: the message never repeats the value: it holds a password.
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\/./, { message: "expected a postgres:// or postgresql:// URL" })
          .optional(),
      })
      .strict(),
    log: z
      .object({
        level: z
          .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
          .default("info"),
      })
      .strict()
      .default({ level: "info" }),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.chain !== undefined && config.networks !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["networks"],
        message:
          'give either `chain` (one network) or `networks` (several), not both: move the chain section into networks as an entry named "ethereum"',
      });
    }
    if ((config.database.path === undefined) === (config.database.url === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["database"],
        message:
          config.database.path === undefined
            ? "give database.path (a SQLite file) or database.url (PostgreSQL, or OXBTCPAY_DATABASE_URL)"
            : "give either database.path (SQLite) or database.url (PostgreSQL), not both",
      });
    }
    if (config.chain === undefined && config.networks === undefined) {
      ctx.addIssue({ code: "custom", path: ["chain"], message: "is required (or `networks`)" });
    }
    if (config.networks === undefined) {
      config.postbacks.events.forEach((type, index) => {
        if ((NETWORK_EVENT_TYPES as readonly string[]).includes(type)) {
          ctx.addIssue({
            code: "custom",
            path: ["postbacks", "events", index],
            message: `${type} is only raised with \`networks\` (a single chain has no wrong network)`,
          });
        }
      });
    }
  })
  .transform(({ chain, networks, ...rest }) => ({
    ...rest,
    /**
     * The `chain` section as given; with `networks`, the first network in
     * its shape (kept so that code written for one chain still reads one).
     * Read the networks through {@link networksOf}.
     */
    chain: chain ?? firstAsChain(networks),
    /** `networks` as given; undefined with the single `chain` section. */
    ...(networks === undefined ? {} : { networks }),
  }));

/** The first `networks` entry in the shape of the `chain` section. */
function firstAsChain(networks: ReadonlyArray<z.output<typeof networkEntry>> | undefined) {
  const first = networks?.[0];
  if (!first) throw new Error("unreachable: the config has neither chain nor networks");
  const { name: _name, displayName, ...chain } = first;
  return { ...chain, name: displayName };
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/**
 * The networks a config watches, in config order: its `networks`, or the
 * single `chain` section as one network named "ethereum".
 */
export function networksOf(config: Pick<Config, "chain" | "networks">): NetworkConfig[] {
  if (config.networks === undefined) {
    const { name: displayName, ...chain } = config.chain;
    return [{ ...chain, name: LEGACY_NETWORK, displayName, key: "chain" }];
  }
  return config.networks.map((network, index) => ({ ...network, key: `networks.${index}` }));
}

/** Formats zod issues as "key: problem" lines. */
function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.join(".") : "(root)";
    const message =
      issue.code === "invalid_type" && issue.message.includes("received undefined")
        ? "is required"
        : issue.message;
    return `${key}: ${message}`;
  });
}

/**
 * Puts `OXBTCPAY_RPC_URL_<NAME>` into the `networks` entry named `<name>`
 * (in `merged`); returns the problems: such a variable for no network, or
 * for a config with the single `chain` section, and `OXBTCPAY_RPC_URL` with
 * `networks` (it names no network).
 */
function networkEnvOverrides(
  merged: Record<string, unknown>,
  env: Record<string, string | undefined>,
): string[] {
  const issues: string[] = [];
  const list = Array.isArray(merged.networks) ? (merged.networks as unknown[]) : undefined;
  /** Each entry that has a name, by its variable. */
  const byVariable = new Map<string, Record<string, unknown>>();
  for (const entry of list ?? []) {
    if (typeof entry !== "object" || entry === null) continue;
    const name = (entry as { name?: unknown }).name;
    if (typeof name === "string")
      byVariable.set(rpcUrlEnvOf(name), entry as Record<string, unknown>);
  }
  const wanted = [...byVariable.keys()];
  if (list !== undefined && env.OXBTCPAY_RPC_URL) {
    issues.push(
      `OXBTCPAY_RPC_URL: it replaces chain.rpcUrl, and this config has networks instead: set ${wanted.length > 0 ? wanted.join(", ") : "OXBTCPAY_RPC_URL_<NAME>"} (one per network)`,
    );
  }
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith(RPC_URL_ENV_PREFIX) || value === undefined || value === "") continue;
    const entry = byVariable.get(variable);
    if (entry) {
      entry.rpcUrl = value;
    } else if (list === undefined) {
      issues.push(
        `${variable}: it names a network, and this config has the single chain section: set OXBTCPAY_RPC_URL`,
      );
    } else {
      const name = variable.slice(RPC_URL_ENV_PREFIX.length).toLowerCase();
      issues.push(`${variable}: no network named "${name}" in networks`);
    }
  }
  return issues;
}

/** Validates an already-read config object (plus env overrides). Throws ConfigError. */
export function parseConfig(raw: unknown, env: Record<string, string | undefined> = {}): Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(["(root): expected a JSON object"]);
  }
  const merged = structuredClone(raw) as Record<string, Record<string, unknown>>;
  const envIssues = networkEnvOverrides(merged, env);
  for (const [name, [section, key]] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    // With `networks`, OXBTCPAY_RPC_URL has no chain section to go to (reported above).
    if (name === "OXBTCPAY_RPC_URL" && "networks" in merged) continue;
    const target = merged[section];
    if (target !== undefined && (typeof target !== "object" || target === null)) continue;
    merged[section] = { ...(target ?? {}), [key]: value };
  }
  const result = configSchema.safeParse(merged);
  const issues = [...envIssues, ...(result.success ? [] : formatIssues(result.error))];
  if (issues.length > 0 || !result.success) throw new ConfigError(issues);
  return result.data;
}

/** Reads and validates the JSON config file at `path`. Throws ConfigError. */
export function loadConfig({
  path,
  env = {},
}: {
  path: string;
  env?: Record<string, string | undefined>;
}): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError([`(file): cannot read ${path}: ${errorMessage(error)}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`(file): ${path} is not valid JSON: ${errorMessage(error)}`]);
  }
  return parseConfig(raw, env);
}
