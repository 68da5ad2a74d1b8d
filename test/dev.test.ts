/**
 * `0xbtcpay dev` (what `npm start` runs): the whole flow a newcomer sees, in a
 * child process, then Ctrl-C stops everything, anvil included.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "vitest";
import { CLI } from "./helpers/cli.ts";
import { tempDir, waitFor } from "./helpers/index.ts";

const dir = tempDir();
let child: ChildProcess | undefined;
/** Holds the port `dev` is asked for, so anvil has to take another. */
const taken = createServer();
afterAll(() => {
  child?.kill("SIGKILL");
  taken.close();
  dir.cleanup();
});

describe("0xbtcpay dev", () => {
  test("prints the URLs (anvil on a free port, the asked one being taken), takes a payment, `dev pay` pays it, the demo shop gets the postback, SIGINT stops all", async () => {
    const config = JSON.parse(readFileSync("config/dev.json", "utf8"));
    config.private.port = 0;
    config.public.port = 0;
    config.ops = { port: 0 };
    config.log.level = "warn";
    const configPath = join(dir.path, "dev.json");
    writeFileSync(configPath, JSON.stringify(config));
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const takenPort = (taken.address() as { port: number }).port;

    let stdout = "";
    child = spawn(
      process.execPath,
      [CLI, "dev", "--config", configPath, "--chain-port", String(takenPort)],
      {
        cwd: dir.path,
        env: { PATH: process.env.PATH ?? "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
    });
    const exit = new Promise<number | null>((r) => child?.once("exit", (code) => r(code)));

    const urls = await waitFor(
      () => {
        const privateUrl = /private JSON-RPC \(shop server\):\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(
          stdout,
        )?.[1];
        const publicUrl = /public status \(browsers\):\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(
          stdout,
        )?.[1];
        return privateUrl && publicUrl ? { privateUrl, publicUrl } : undefined;
      },
      { timeoutMs: 60_000, what: "dev URLs" },
    );
    const anvilUrl = /anvil RPC:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    expect(anvilUrl).toMatch(/^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
    expect(anvilUrl).not.toBe(`http://127.0.0.1:${takenPort}`);
    expect(stdout).toContain("curl -s -X POST");
    expect(stdout).toContain("npx 0xbtcpay dev pay <id>");
    const receiverUrl = /demo shop postback receiver:\s+(\S+)/.exec(stdout)?.[1];

    const response = await fetch(`${urls.privateUrl}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "start_payment",
        params: { amount: "0.29", data: { order_id: "444" }, postback_url: receiverUrl },
      }),
    });
    const { result } = (await response.json()) as { result: { id: string; checkout_url: string } };
    expect(result.checkout_url).toBe(`${urls.publicUrl}/${result.id}`);
    const page = await fetch(result.checkout_url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<h1><span class="amount">0.29</span>');

    const pay = await promisify(execFile)(process.execPath, [CLI, "dev", "pay", result.id], {
      cwd: dir.path,
      env: { PATH: process.env.PATH ?? "" },
    });
    expect(pay.stdout).toContain("sent the amount due 0xBTC (29000000 base units)");

    const paid = await waitFor(
      async () => {
        const status = (await (
          await fetch(`${urls.publicUrl}/${result.id}/status.json`)
        ).json()) as {
          paid_at: number | null;
          status: string;
        };
        return status.paid_at !== null ? status : undefined;
      },
      { timeoutMs: 30_000, what: "paid" },
    );
    expect(paid.status).toBe("paid");
    await waitFor(() => stdout.includes(`[demo shop] postback received: {"id":"${result.id}"`), {
      what: "demo postback",
    });

    child.kill("SIGINT");
    expect(await exit).toBe(0);
    await expect(fetch(anvilUrl as string, { method: "POST", body: "{}" })).rejects.toThrow();
  });
});
