/**
 * `0xbtcpay dev` (what `npm start` runs): the whole flow a newcomer sees, in a
 * child process, then Ctrl-C stops everything, anvil included; and
 * `dev --networks 2`: two local chains, a payment paid part on each.
 */
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { type DevChild, devPay, spawnDev, writeDevConfig } from "../helpers/cli.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

const dir = tempDir();
const children: DevChild[] = [];
/** Holds the port `dev` is asked for, so anvil has to take another. */
const taken = createServer();
afterAll(() => {
  for (const dev of children) dev.child.kill("SIGKILL");
  taken.close();
  dir.cleanup();
});

async function startPaymentOn(privateUrl: string, params: Record<string, unknown>) {
  const response = await fetch(`${privateUrl}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "start_payment", params }),
  });
  const { result } = (await response.json()) as {
    result: { id: string; checkout_url: string; networks?: string[] };
  };
  return result;
}

/** status.json once `check` holds. */
const statusWhen = <T>(
  publicUrl: string,
  id: string,
  check: (status: T) => boolean,
  what: string,
) =>
  waitFor(
    async () => {
      const status = (await (await fetch(`${publicUrl}/${id}/status.json`)).json()) as T;
      return check(status) ? status : undefined;
    },
    { timeoutMs: 30_000, what },
  );

// NOTE: concurrent: each test runs its own dev daemon in its own folder, and
// most of their time is waiting for blocks (one a second) and child processes.
describe.concurrent("0xbtcpay dev", () => {
  test("prints the URLs (anvil on a free port, the asked one being taken), takes a payment, `dev pay` pays it, the demo shop gets the postback, SIGINT stops all", async () => {
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const takenPort = (taken.address() as { port: number }).port;
    const dev = await spawnDev(
      ["--config", writeDevConfig(dir.path), "--chain-port", String(takenPort)],
      dir.path,
    );
    children.push(dev);
    const stdout = dev.stdout();
    const anvilUrl = /anvil RPC:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    expect(anvilUrl).toMatch(/^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
    expect(anvilUrl).not.toBe(`http://127.0.0.1:${takenPort}`);
    expect(stdout).toContain("curl -s -X POST");
    expect(stdout).toContain("npx 0xbtcpay dev pay <id>");
    expect(stdout).toContain("npx 0xbtcpay dev --networks 2");
    const receiverUrl = /demo shop postback receiver:\s+(\S+)/.exec(stdout)?.[1];

    const result = await startPaymentOn(dev.privateUrl, {
      amount: "0.29",
      data: { order_id: "444" },
      postback_url: receiverUrl,
    });
    // One network: the wire of the original, no network fields.
    expect(result.networks).toBeUndefined();
    expect(result.checkout_url).toBe(`${dev.publicUrl}/${result.id}`);
    const page = await fetch(result.checkout_url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<h1><span class="amount">0.29</span>');

    const pay = await devPay([result.id], dir.path);
    expect(pay.stdout).toContain("sent the amount due 0xBTC (29000000 base units)");
    expect(pay.stdout).not.toContain(" on ethereum");

    const paid = await statusWhen<{ paid_at: number | null; status: string }>(
      dev.publicUrl,
      result.id,
      (status) => status.paid_at !== null,
      "paid",
    );
    expect(paid.status).toBe("paid");
    await waitFor(
      () => dev.stdout().includes(`[demo shop] postback received: {"id":"${result.id}"`),
      { what: "demo postback" },
    );

    dev.child.kill("SIGINT");
    expect(await dev.exit).toBe(0);
    await expect(fetch(anvilUrl as string, { method: "POST", body: "{}" })).rejects.toThrow();
  });

  test("--networks 2: two local chains (31337 ethereum, 31338 polygon), a payment paid part on polygon and the rest on ethereum with `dev pay --network`, the checkout page has the switch; an unknown network is refused; SIGINT stops both chains", async () => {
    const cwd = join(dir.path, "two");
    mkdirSync(cwd);
    const dev = await spawnDev(
      ["--config", writeDevConfig(cwd), "--chain-port", "0", "--networks", "2"],
      cwd,
    );
    children.push(dev);
    const stdout = dev.stdout();
    const chains = [
      ...stdout.matchAll(/^ {2}(\w+): +(.+), chain id (\d+), 2 confirmations, anvil RPC (\S+)$/gm),
    ].map(([, name, displayName, chainId, rpcUrl]) => ({ name, displayName, chainId, rpcUrl }));
    expect(chains.map(({ name, displayName, chainId }) => [name, displayName, chainId])).toEqual([
      ["ethereum", "Ethereum (local)", "31337"],
      ["polygon", "Polygon (local)", "31338"],
    ]);
    expect(stdout).toContain("npx 0xbtcpay dev pay <id> --network polygon");

    const result = await startPaymentOn(dev.privateUrl, { amount: "0.29" });
    expect(result.networks).toEqual(["ethereum", "polygon"]);
    const page = await (await fetch(result.checkout_url)).text();
    expect(page).toContain('<a href="?network=polygon" data-network="polygon">Polygon (local)</a>');

    const part = await devPay([result.id, "--network", "polygon", "--amount", "0.09"], cwd);
    expect(part.stdout).toContain(
      "sent 0.09 0xBTC (9000000 base units) from 0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    );
    expect(part.stdout).toContain(" on polygon (chain id 31338)\n");
    await statusWhen<{ paid_amount: string }>(
      dev.publicUrl,
      result.id,
      (status) => status.paid_amount === "0.09",
      "polygon's part seen",
    );
    // The rest, by default on the first network the payment accepts.
    const rest = await devPay([result.id, "--from", "2"], cwd);
    expect(rest.stdout).toContain("sent the amount due 0xBTC (20000000 base units)");
    expect(rest.stdout).toContain(" on ethereum (chain id 31337)\n");
    const restTx = /^tx (0x[0-9a-f]{64})$/m.exec(rest.stdout)?.[1];
    const paid = await statusWhen<{
      status: string;
      tx_hash: string;
      network: string;
      transfers: Array<{ network: string; amount: string }>;
    }>(dev.publicUrl, result.id, (status) => status.status === "paid", "paid on both");
    expect(paid).toMatchObject({ tx_hash: restTx, network: "ethereum" });
    // (Transfers are listed by block number, which says nothing across networks.)
    expect(paid.transfers.map(({ network, amount }) => [network, amount]).sort()).toEqual([
      ["ethereum", "0.2"],
      ["polygon", "0.09"],
    ]);

    expect(await devPay([result.id, "--network", "arbitrum"], cwd)).toEqual({
      code: 1,
      stdout: "",
      stderr: "0xbtcpay: the dev daemon has no network arbitrum: it runs ethereum and polygon\n",
    });

    dev.child.kill("SIGINT");
    expect(await dev.exit).toBe(0);
    for (const { rpcUrl } of chains) {
      await expect(fetch(rpcUrl as string, { method: "POST", body: "{}" })).rejects.toThrow();
    }
  });
});
