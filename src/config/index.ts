/**
 * Configuration: one JSON file plus a few secrets from the environment,
 * validated once with zod. Every problem is reported as "key: problem".
 */
import { readFileSync } from "node:fs";
import { isAddress } from "viem";
import { z } from "zod";
import { MAINNET_0XBTC } from "../../contracts-abi/index.ts";
import { parseExtendedPublicKey } from "../addresses/index.ts";
import { ConfigError, errorMessage } from "../internal/errors.ts";
import { parseAmount } from "../payments/amount.ts";
import { parseCidr } from "../rpc/allowlist.ts";
import { PERMISSIONS, parseKeyHash } from "../rpc/api-keys.ts";

/** Environment variables that may replace a key of the file (secrets stay out of files). */
export const ENV_OVERRIDES = {
  OXBTCPAY_XPUB: ["wallet", "xpub"],
  OXBTCPAY_RPC_URL: ["chain", "rpcUrl"],
  OXBTCPAY_POSTBACK_SECRET: ["postbacks", "secret"],
} as const;

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

const httpUrl = z.string().refine(
  (value) => {
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch {
      return false;
    }
  },
  { message: "expected an http(s) URL" },
);

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

/** The public port's per-IP limit: `max` requests per `windowMs` (0: no limit). */
const RATE_LIMIT_DEFAULT = { windowMs: 60_000, max: 600 };
/** X-Forwarded-For is believed from a reverse proxy on the same host by default. */
const PUBLIC_TRUST_PROXY_DEFAULT = ["127.0.0.0/8", "::1"];

export const configSchema = z
  .object({
    chain: z
      .object({
        rpcUrl: httpUrl,
        chainId: z.number().int().positive(),
        token: z
          .string()
          .refine((value) => isAddress(value, { strict: false }), {
            message: "expected a 0x-prefixed 20-byte address",
          })
          .transform((value) => value.toLowerCase())
          .default(MAINNET_0XBTC),
        decimals: z.number().int().min(0).max(36).default(8),
        confirmations: z.number().int().min(1).max(1000).default(3),
        pollIntervalMs: z.number().int().min(50).max(600_000).default(2000),
        /** First block to scan on the very first start; default: the head at that moment. */
        startBlock: z.number().int().min(0).optional(),
        /** Largest eth_getLogs range, in blocks. */
        maxBlockRange: z.number().int().min(1).max(1_000_000).default(2000),
      })
      .strict(),
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
      })
      .strict()
      .default({
        host: "0.0.0.0",
        port: 8080,
        rateLimit: RATE_LIMIT_DEFAULT,
        trustProxy: PUBLIC_TRUST_PROXY_DEFAULT,
      }),
    payments: z
      .object({
        expiresAfter: duration.default(86_400),
        /** Largest amount start_payment accepts, in whole tokens (0xBTC's supply cap). */
        maxAmount: z
          .string()
          .refine((value) => parseAmount(value, { decimals: 0, maxWholeTokens: 10n ** 30n }).ok, {
            message: "expected a whole number of tokens as a string",
          })
          .default("20999984"),
      })
      .strict()
      .default({ expiresAfter: 86_400, maxAmount: "20999984" }),
    postbacks: z
      .object({
        /** Signing secret (used from the postbacks issue on); prefer OXBTCPAY_POSTBACK_SECRET. */
        secret: z.string().min(1).optional(),
        timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
      })
      .strict()
      .default({ timeoutMs: 15_000 }),
    database: z.object({ path: z.string().min(1) }).strict(),
    log: z
      .object({
        level: z
          .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
          .default("info"),
      })
      .strict()
      .default({ level: "info" }),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

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

/** Validates an already-read config object (plus env overrides). Throws ConfigError. */
export function parseConfig(raw: unknown, env: Record<string, string | undefined> = {}): Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(["(root): expected a JSON object"]);
  }
  const merged = structuredClone(raw) as Record<string, Record<string, unknown>>;
  for (const [name, [section, key]] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    const target = merged[section];
    if (target !== undefined && (typeof target !== "object" || target === null)) continue;
    merged[section] = { ...(target ?? {}), [key]: value };
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(formatIssues(result.error));
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
