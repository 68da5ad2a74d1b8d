import { Writable } from "node:stream";
import { describe, expect, test } from "vitest";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import { createLogger } from "../../src/internal/logger.ts";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { lines, logger: createLogger({ level: "info", destination }) };
}

describe("logger", () => {
  test("the xpub, signing secrets and RPC URL (it may hold an API key) are redacted", async () => {
    const { lines, logger } = capture();
    const config = parseConfig({
      chain: { rpcUrl: "https://rpc.example/v3/SECRETKEY", chainId: 1 },
      wallet: { xpub: DEV_XPUB },
      postbacks: {
        secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
        previousSecrets: ["whsec_b2xkc2VjcmV0b2xkc2VjcmV0b2xkc2VjcmV0"],
      },
      database: { path: "x" },
    });
    logger.info({ config }, "config");
    logger.info({ wallet: config.wallet, xpub: DEV_XPUB }, "wallet");
    logger
      .child({ module: "postbacks" })
      .info({ secret: "whsec_x", headers: { authorization: "Bearer k" } }, "s");
    const out = lines.join("");
    expect(lines).toHaveLength(3);
    expect(out).not.toContain(DEV_XPUB);
    expect(out).not.toContain("SECRETKEY");
    expect(out).not.toContain("whsec_");
    expect(out).not.toContain("Bearer k");
    expect(out.match(/\[redacted\]/g)?.length).toBe(8);
  });

  test("every network's RPC and websocket URLs are redacted (providers put API keys in both)", async () => {
    const { lines, logger } = capture();
    const config = parseConfig({
      networks: [
        {
          name: "ethereum",
          chainId: 1,
          rpcUrl: "https://rpc.example/v3/KEYONE",
          wsUrl: "wss://rpc.example/ws/v3/KEYTWO",
        },
        {
          name: "polygon",
          chainId: 137,
          rpcUrl: "https://polygon.example/KEYTHREE",
          wsUrl: "wss://polygon.example/ws/KEYFOUR",
        },
      ],
      wallet: { xpub: DEV_XPUB },
      database: { path: "x" },
    });
    logger.info({ config }, "config");
    for (const network of config.networks ?? []) logger.info({ network }, "network");
    const out = lines.join("");
    for (const key of ["KEYONE", "KEYTWO", "KEYTHREE", "KEYFOUR"]) expect(out).not.toContain(key);
    expect(out).toContain("polygon");
  });
});
