import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/**
 * Paths redacted from every log line. The xpub lets anyone link all the
 * shop's payments together, and the secrets would let them forge postbacks.
 */
export const REDACT_PATHS = [
  "xpub",
  "*.xpub",
  "wallet.xpub",
  "config.wallet.xpub",
  "secret",
  "*.secret",
  "postbackSecret",
  "*.postbackSecret",
  "config.postbacks.secret",
  "previousSecrets",
  "*.previousSecrets",
  "config.postbacks.previousSecrets",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "rpcUrl",
  "*.rpcUrl",
  "config.chain.rpcUrl",
  "networks[*].rpcUrl",
  "config.networks[*].rpcUrl",
  "config.database.url",
  "database.url",
  "wsUrl",
  "*.wsUrl",
  "config.chain.wsUrl",
  "networks[*].wsUrl",
  "config.networks[*].wsUrl",
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: "0xbtcpay" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination(2),
  );
}
