/**
 * `0xbtcpay dev --fork-url`: anvil forks a network on which the token was
 * deployed first (a local "parent" anvil, since there is no internet here),
 * the daemon watches the token at the parent's address from the fork block,
 * anvil's accounts get tokens through anvil_dealERC20, and a payment is paid
 * end to end with `dev pay`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CLI } from "./helpers/cli.ts";
import { startTestChain, type TestChain, tempDir, waitFor } from "./helpers/index.ts";

const run = promisify(execFile);
const dir = tempDir();
let parent: TestChain;
let child: ChildProcess | undefined;

beforeAll(async () => {
  parent = await startTestChain();
  await parent.mine(5);
});
afterAll(async () => {
  child?.kill("SIGKILL");
  await parent?.stop();
  dir.cleanup();
});

describe("0xbtcpay dev --fork-url", () => {
  test("forks the parent chain, watches the token at the parent's address from the fork block, funds the accounts and gets a payment paid", async () => {
    const config = JSON.parse(readFileSync("config/dev.json", "utf8"));
    config.private.port = 0;
    config.public.port = 0;
    config.ops = { port: 0 };
    config.log.level = "warn";
    const configPath = join(dir.path, "dev.json");
    writeFileSync(configPath, JSON.stringify(config));
    const forkBlock = Number(await parent.client.getBlockNumber());

    let stdout = "";
    child = spawn(
      process.execPath,
      [
        CLI,
        "dev",
        "--config",
        configPath,
        "--chain-port",
        "0",
        "--fork-url",
        parent.rpcUrl,
        "--fork-block",
        String(forkBlock),
        "--token",
        parent.token,
      ],
      { cwd: dir.path, env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      stdout += chunk;
    });
    const exit = new Promise<number | null>((r) => child?.once("exit", (code) => r(code)));

    const privateUrl = await waitFor(
      () => /private JSON-RPC \(shop server\):\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)?.[1],
      { timeoutMs: 60_000, what: `dev URLs in ${stdout}` },
    );
    expect(stdout).toContain(`starting anvil as a fork of ${parent.rpcUrl} at block ${forkBlock}`);
    expect(stdout).toContain(`watching the token at ${parent.token} from block ${forkBlock}`);

    const response = await fetch(`${privateUrl}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "start_payment",
        params: { amount: "1.5" },
      }),
    });
    const { result } = (await response.json()) as { result: { id: string; checkout_url: string } };
    const pay = await run(process.execPath, [CLI, "dev", "pay", result.id, "--from", "4"], {
      cwd: dir.path,
      env: { PATH: process.env.PATH ?? "" },
    });
    expect(pay.stdout).toContain("sent the amount due 0xBTC (150000000 base units)");
    const paid = await waitFor(
      async () => {
        const status = (await (await fetch(`${result.checkout_url}/status.json`)).json()) as {
          status: string;
          paid_amount: string;
        };
        return status.status === "paid" ? status : undefined;
      },
      { timeoutMs: 30_000, what: "paid on the fork" },
    );
    expect(paid.paid_amount).toBe("1.5");
    // The parent chain itself is untouched: the payment exists on the fork only.
    expect(Number(await parent.client.getBlockNumber())).toBe(forkBlock);

    child.kill("SIGINT");
    expect(await exit).toBe(0);
  });

  test("--token and --fork-block without --fork-url are refused; a bad --fork-url is refused", async () => {
    const refused = await run(process.execPath, [CLI, "dev", "--token", parent.token], {
      cwd: dir.path,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toContain(
      "--fork-block and --token need --fork-url",
    );
    const bad = await run(process.execPath, [CLI, "dev", "--fork-url", "ftp://x"], {
      cwd: dir.path,
    }).catch((error: { code: number; stderr: string }) => error);
    expect((bad as { stderr: string }).stderr).toContain("expected an http(s) RPC URL");
  });
});
