/**
 * The host side of `npm run docker:verify` (test/docker/verify.sh): a local
 * anvil chain with the test token, a shop's postback receiver, and one
 * payment through the daemon that runs in the container.
 *
 *   node --import tsx test/docker/e2e.ts WORKDIR
 *
 * Writes WORKDIR/config.json (the container's config: anvil's URL, the token,
 * two free loopback ports) and WORKDIR/secret (the postback signing secret,
 * which the container gets from the environment), then waits for the daemon
 * on its private port, runs start_payment → transfer from an anvil account →
 * paid → signed postback, and writes WORKDIR/result.json. anvil mines a block
 * a second and keeps running until SIGTERM, so the script can check the
 * daemon's health and stop it while the chain still moves.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import type { Hex } from "viem";
import { ANVIL_ACCOUNTS, DEV_XPUB, startLocalChain } from "../../src/chain/anvil.ts";

const dir = process.argv[2];
if (!dir) throw new Error("usage: e2e.ts WORKDIR");
const log = (line: string) => process.stdout.write(`[e2e] ${line}\n`);
const PAYER = ANVIL_ACCOUNTS[1];
const AMOUNT = "1.5";
const AMOUNT_UNITS = 150_000_000n; // 1.5 tokens, 8 decimals
const TIMEOUT_MS = 180_000;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const chain = await startLocalChain({ blockTime: 1 });
process.on("SIGTERM", () => {
  void chain.stop().finally(() => process.exit(0));
});
const token = await chain.deployToken();
await chain.mint(token, PAYER, AMOUNT_UNITS * 10n);
log(`anvil at ${chain.rpcUrl}, test token at ${token}, ${PAYER} funded`);

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const postbacks: { headers: Record<string, string>; body: string }[] = [];
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => {
    body += chunk;
  });
  req.on("end", () => {
    postbacks.push({ headers: req.headers as Record<string, string>, body });
    res.writeHead(200).end("ok");
  });
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/payment_complete`;

const privatePort = await freePort();
const publicPort = await freePort();
const privateUrl = `http://127.0.0.1:${privatePort}/`;
const publicUrl = `http://127.0.0.1:${publicPort}`;
writeFileSync(join(dir, "secret"), secret, { mode: 0o600 });
writeFileSync(
  join(dir, "config.json"),
  `${JSON.stringify(
    {
      chain: {
        rpcUrl: chain.rpcUrl,
        chainId: 31337,
        token,
        confirmations: 2,
        pollIntervalMs: 500,
      },
      wallet: { xpub: DEV_XPUB },
      // The container shares the host's network: loopback is loopback.
      private: { host: "127.0.0.1", port: privatePort },
      public: { host: "127.0.0.1", port: publicPort, url: publicUrl },
      postbacks: { allowTargets: ["127.0.0.1/32"] },
      database: { path: "/data/0xbtcpay.sqlite" },
      log: { level: "info" },
    },
    null,
    2,
  )}\n`,
);
log(`wrote ${join(dir, "config.json")}: private ${privateUrl}, public ${publicUrl}`);

async function rpc(method: string, params: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(privateUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const reply = (await response.json()) as { result?: Record<string, unknown>; error?: unknown };
  if (!reply.result) throw new Error(`${method} failed: ${JSON.stringify(reply.error)}`);
  return reply.result;
}

const payment = await until("the daemon's private port", () =>
  rpc("start_payment", {
    amount: AMOUNT,
    data: { order_id: "docker-1" },
    postback_url: receiverUrl,
  }),
);
const id = payment.id as string;
const address = payment.address as Hex;
log(`start_payment: ${JSON.stringify(payment)}`);

const checkout = await fetch(`${publicUrl}/${id}`);
const page = await checkout.text();
const asset = /\/assets\/checkout\.[0-9a-f]{12}\.js/.exec(page)?.[0];
if (checkout.status !== 200 || !asset) throw new Error(`checkout page: ${checkout.status}`);
const script = await fetch(`${publicUrl}${asset}`);
if (script.status !== 200) throw new Error(`checkout script ${asset}: ${script.status}`);
log(`checkout page ${publicUrl}/${id}: 200, its script ${asset}: 200`);

const tx = await chain.transfer({ token, from: PAYER, to: address, value: AMOUNT_UNITS });
log(`paid ${AMOUNT} from ${PAYER} in ${tx}`);

type Status = {
  status: string;
  paid_amount: string;
  tx_hash: string | null;
  confirmations: number;
};
const paid = await until("status paid", async () => {
  const status = (await (await fetch(`${publicUrl}/${id}/status.json`)).json()) as Status;
  return status.status === "paid" ? status : undefined;
});
if (paid.tx_hash !== tx || paid.paid_amount !== AMOUNT) {
  throw new Error(`status.json disagrees with the chain: ${JSON.stringify(paid)}`);
}
log(`status.json: ${JSON.stringify(paid)}`);

const postback = await until("the postback", async () => postbacks[0]);
const body = new Webhook(secret).verify(postback.body, postback.headers) as Record<string, unknown>;
if (body.id !== id || body.event !== "payment.paid" || body.tx_hash !== tx) {
  throw new Error(`unexpected postback: ${postback.body}`);
}
if (body.data !== JSON.stringify({ order_id: "docker-1" })) {
  throw new Error(`postback data: ${String(body.data)}`);
}
log(`postback received, signature verified: ${postback.body}`);

writeFileSync(
  join(dir, "result.json"),
  `${JSON.stringify({ id, address, tx, publicUrl, privateUrl, status: paid, postback: body })}\n`,
);
log("payment paid end to end; anvil keeps mining until SIGTERM");
