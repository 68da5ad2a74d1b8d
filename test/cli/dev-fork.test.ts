/**
 * `0xbtcpay dev --fork-url`: anvil forks a network on which the token was
 * deployed first (a local "parent" anvil, since there is no internet here),
 * the daemon watches the token at the parent's address from the fork block,
 * anvil's accounts get tokens through anvil_dealERC20, and a payment is paid
 * end to end with `dev pay`; with `--networks 2`, a blank local chain beside
 * the fork, and a payment paid part on each.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { cli, type DevChild, devPay, spawnDev, writeDevConfig } from "../helpers/cli.ts";
import { startTestChain, type TestChain, tempDir, waitFor } from "../helpers/index.ts";

const dir = tempDir();
let parent: TestChain;
const children: DevChild[] = [];

beforeAll(async () => {
  parent = await startTestChain();
  await parent.mine(5);
});
afterAll(async () => {
  for (const dev of children) dev.child.kill("SIGKILL");
  await parent?.stop();
  dir.cleanup();
});

async function startPaymentOn(privateUrl: string, amount: string) {
  const response = await fetch(`${privateUrl}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "start_payment", params: { amount } }),
  });
  const { result } = (await response.json()) as {
    result: { id: string; checkout_url: string; networks?: string[] };
  };
  return result;
}

/** status.json once the payment is paid. */
const paidStatus = (checkoutUrl: string, what: string) =>
  waitFor(
    async () => {
      const status = (await (await fetch(`${checkoutUrl}/status.json`)).json()) as {
        status: string;
        paid_amount: string;
        transfers: Array<{ network?: string }>;
      };
      return status.status === "paid" ? status : undefined;
    },
    { timeoutMs: 30_000, what },
  );

// NOTE: concurrent: each test runs its own dev daemon in its own folder, and
// most of their time is waiting for blocks (one a second) and child processes.
describe.concurrent("0xbtcpay dev --fork-url", () => {
  test("forks the parent chain, watches the token at the parent's address from the fork block, funds the accounts and gets a payment paid", async () => {
    const forkBlock = Number(await parent.client.getBlockNumber());
    const dev = await spawnDev(
      [
        "--config",
        writeDevConfig(dir.path),
        "--chain-port",
        "0",
        "--fork-url",
        parent.rpcUrl,
        "--fork-block",
        String(forkBlock),
        "--token",
        parent.token,
      ],
      dir.path,
    );
    children.push(dev);
    expect(dev.stdout()).toContain(
      `starting anvil as a fork of ${parent.rpcUrl} at block ${forkBlock}`,
    );
    expect(dev.stdout()).toContain(`watching the token at ${parent.token} from block ${forkBlock}`);

    const result = await startPaymentOn(dev.privateUrl, "1.5");
    const pay = await devPay([result.id, "--from", "4"], dir.path);
    expect(pay.stdout).toContain("sent the amount due 0xBTC (150000000 base units)");
    const paid = await paidStatus(result.checkout_url, "paid on the fork");
    expect(paid.paid_amount).toBe("1.5");
    // The parent chain itself is untouched: the payment exists on the fork only.
    expect(Number(await parent.client.getBlockNumber())).toBe(forkBlock);

    dev.child.kill("SIGINT");
    expect(await dev.exit).toBe(0);
  });

  test("--networks 2 with --fork-url: the fork is network ethereum (its chain id), a blank local chain beside it is polygon (31338); a payment paid part on each", async () => {
    const cwd = join(dir.path, "two");
    mkdirSync(cwd);
    const forkBlock = Number(await parent.client.getBlockNumber());
    const dev = await spawnDev(
      [
        "--config",
        writeDevConfig(cwd),
        "--chain-port",
        "0",
        "--fork-url",
        parent.rpcUrl,
        "--token",
        parent.token,
        "--networks",
        "2",
      ],
      cwd,
    );
    children.push(dev);
    const stdout = dev.stdout();
    expect(stdout).toContain(`a fork of ${parent.rpcUrl}, and a local chain beside it`);
    expect(stdout).toContain(
      `watching the token at ${parent.token} from block ${forkBlock} as network ethereum`,
    );
    expect(stdout).toMatch(
      /^ {2}ethereum: +Local chain \(anvil\) \(local fork\), chain id 31337, 2 confirmations, anvil RPC /m,
    );
    expect(stdout).toMatch(/^ {2}polygon: +Polygon \(local\), chain id 31338, 2 confirmations, /m);

    const result = await startPaymentOn(dev.privateUrl, "3");
    expect(result.networks).toEqual(["ethereum", "polygon"]);
    const onFork = await devPay([result.id, "--amount", "1"], cwd);
    expect(onFork.stdout).toContain(" on ethereum (chain id 31337)\n");
    const onLocal = await devPay([result.id, "--network", "polygon", "--from", "3"], cwd);
    expect(onLocal.stdout).toContain("sent the amount due 0xBTC (200000000 base units)");
    const paid = await paidStatus(result.checkout_url, "paid on the fork and the local chain");
    expect(paid.transfers.map((t) => t.network).sort()).toEqual(["ethereum", "polygon"]);
    // The parent chain itself is untouched.
    expect(Number(await parent.client.getBlockNumber())).toBe(forkBlock);

    dev.child.kill("SIGINT");
    expect(await dev.exit).toBe(0);
  });

  test("--token and --fork-block without --fork-url are refused; a bad --fork-url is refused; --networks is 1 or 2", async () => {
    const refused = await cli(["dev", "--token", parent.token]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--fork-block and --token need --fork-url");
    const bad = await cli(["dev", "--fork-url", "ftp://x"]);
    expect(bad.stderr).toContain("expected an http(s) RPC URL");
    const three = await cli(["dev", "--networks", "3"]);
    expect(three.code).toBe(1);
    expect(three.stderr).toContain(
      "option '--networks <n>' argument '3' is invalid. expected 1 or 2 (local chains standing for Ethereum and Polygon)",
    );
  });
});
