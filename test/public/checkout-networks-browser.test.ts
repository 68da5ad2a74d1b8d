/// <reference lib="dom" />
/**
 * The checkout page of a daemon watching two networks (issue 13, test 7), in
 * Debian's Chromium against two real anvil chains (chain ids 31337 and
 * 31338, the test token at a different address on each): the network
 * switch changes the QR's chain id and token and the wallet button's chain,
 * in place with JavaScript and by links without it; a payment restricted to
 * one network has no switch; axe-core passes in English and Spanish.
 * Screenshots at 360 and 1280 px go to test-output/checkout-networks/.
 * One browser and one daemon serve every test.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import { type Daemon, startDaemon } from "../../src/daemon.ts";
import { erc20TransferUri, transferCalldata } from "../../src/public/checkout/uri.ts";
import { decodeQr, launchBrowser, recordRequests } from "../helpers/browser.ts";
import { expectCachedPagesAsRendered } from "../helpers/checkout.ts";
import {
  anvilCall,
  LOOPBACK_TARGETS,
  offlineResolver,
  rpc,
  silentLogger,
  startTestChain,
  status as statusOf,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const PAYER = ANVIL_ACCOUNTS[1] as Hex;
const SHOTS = join(process.cwd(), "test-output", "checkout-networks");
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let eth: TestChain;
let poly: TestChain;
let browser: Browser;
let daemon: Daemon;
const dir = tempDir();
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const launched = launchBrowser();
  [eth, poly] = await Promise.all([
    startTestChain({ chainId: 31337 }),
    startTestChain({ chainId: 31338 }),
  ]);
  // Polygon's token at another address than Ethereum's: a mix-up would show.
  poly = { ...poly, token: await poly.deployToken() };
  await poly.mint(poly.token, PAYER, tokens(100));
  daemon = await startDaemon({
    config: parseConfig({
      networks: [
        {
          name: "ethereum",
          displayName: "Ethereum",
          chainId: 31337,
          rpcUrl: eth.rpcUrl,
          token: eth.token,
          confirmations: 3,
          pollIntervalMs: 50,
        },
        {
          name: "polygon",
          displayName: "Polygon",
          chainId: 31338,
          rpcUrl: poly.rpcUrl,
          token: poly.token,
          confirmations: 2,
          pollIntervalMs: 50,
        },
      ],
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 0 },
      public: { host: "127.0.0.1", port: 0, rateLimit: { windowMs: 60_000, max: 0 } },
      checkout: { shopName: "Tea & Co", support: "help@shop.example" },
      payments: { expiresAfter: "1h" },
      postbacks: { allowTargets: LOOPBACK_TARGETS },
      ops: { enabled: false },
      database: { path: join(dir.path, "networks-checkout.sqlite") },
      log: { level: "silent" },
    }),
    logger: silentLogger,
    resolve: offlineResolver,
  });
  browser = await launched;
}, 120_000);

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await daemon?.stop();
  await Promise.all([eth?.stop(), poly?.stop()]);
  dir.cleanup();
});

async function newPage(options: Parameters<Browser["newContext"]>[0] = {}) {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, ...options });
  contexts.push(context);
  const requests = recordRequests(context);
  const page = await context.newPage();
  return { page, requests, context };
}

const create = async (params: Record<string, unknown> = {}) => {
  const { json } = await rpc(daemon.privateUrl, {
    jsonrpc: "2.0",
    id: 1,
    method: "start_payment",
    params: { amount: "2.5", ...params },
  });
  if (!json.result) throw new Error(JSON.stringify(json));
  return json.result as { id: string; address: Hex; checkout_url: string };
};

const qrOf = async (page: Page) =>
  decodeQr(await page.locator("figure.qr-payment svg").screenshot());
const current = (page: Page) => page.locator("nav.networks a[aria-current]").textContent();
const uriOn = (chain: TestChain, chainId: number, to: string, amount: bigint) =>
  erc20TransferUri({ token: chain.token, chainId, to, amount });

/** A fake EIP-6963 wallet that accepts everything and records the calls. */
function installWallet(context: BrowserContext) {
  return context.addInitScript(() => {
    const calls: Array<{ method: string; params?: unknown }> = [];
    const provider = {
      request: async ({ method, params }: { method: string; params?: unknown }) => {
        calls.push({ method, params });
        if (method === "eth_requestAccounts") return ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8"];
        if (method === "wallet_switchEthereumChain") return null;
        if (method === "eth_sendTransaction") return `0x${"cd".repeat(32)}`;
        throw new Error(`unexpected ${method}`);
      },
    };
    (window as unknown as { walletCalls: typeof calls }).walletCalls = calls;
    const announce = () =>
      window.dispatchEvent(
        new CustomEvent("eip6963:announceProvider", {
          detail: Object.freeze({
            info: { uuid: "test-wallet", name: "Test Wallet", icon: "data:,", rdns: "test.wallet" },
            provider,
          }),
        }),
      );
    window.addEventListener("eip6963:requestProvider", announce);
    announce();
  });
}

describe("the network switch of a payment that accepts Ethereum and Polygon", () => {
  test("Polygon chosen: the QR's chain id and token, the token line, the warning and the URL follow in place; the wallet switches to Polygon's chain and sends to its token; a payment on Polygon keeps Polygon shown; the language link keeps it; the receipt names the completing network", async () => {
    const p = await create();
    const { page, context, requests } = await newPage();
    await installWallet(context);
    await page.goto(p.checkout_url);
    expect(await page.locator(".network").textContent()).toBe("0xBTC on Ethereum or Polygon");
    expect(await page.locator("nav.networks a").allTextContents()).toEqual(["Ethereum", "Polygon"]);
    expect(await current(page)).toBe("Ethereum");
    expect(await qrOf(page)).toBe(uriOn(eth, 31337, p.address, 250_000_000n));
    expect(await page.locator(".send-only").textContent()).toBe(
      "Send only on Ethereum. The QR code and the buttons below are for Ethereum.",
    );
    expect(await page.locator(".warning").textContent()).toBe(
      "Send only 0xBTC on Ethereum or Polygon to this address. Any other token, or 0xBTC on another network, is lost.",
    );
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });

    await page.getByRole("link", { name: "Polygon" }).click();
    await page.waitForFunction(
      () => document.querySelector("nav.networks a[aria-current]")?.textContent === "Polygon",
    );
    const polygonUri = uriOn(poly, 31338, p.address, 250_000_000n);
    expect(await qrOf(page)).toBe(polygonUri);
    expect(polygonUri).toBe(
      `ethereum:${poly.token}@31338/transfer?address=${p.address}&uint256=250000000`,
    );
    expect(await page.getByRole("link", { name: "Open in wallet" }).getAttribute("href")).toBe(
      polygonUri,
    );
    expect(await page.locator(".token").textContent()).toBe(
      `0xBTC token contract on Polygon: ${poly.token}`,
    );
    expect(await page.locator(".send-only").textContent()).toBe(
      "Send only on Polygon. The QR code and the buttons below are for Polygon.",
    );
    expect(new URL(page.url()).searchParams.get("network")).toBe("polygon");
    // Swapped in place: the same document, the focus on the chosen network.
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Polygon");

    const button = page.locator("#wallet-pay");
    await expect(button.textContent()).resolves.toBe("Pay with Test Wallet");
    await button.click();
    await page.waitForFunction(() =>
      document.querySelector("#wallet-message")?.textContent?.startsWith("Transaction submitted"),
    );
    expect(
      await page.evaluate(() => (window as unknown as { walletCalls: unknown[] }).walletCalls),
    ).toEqual([
      { method: "eth_requestAccounts" },
      { method: "wallet_switchEthereumChain", params: [{ chainId: "0x7a6a" }] },
      {
        method: "eth_sendTransaction",
        params: [
          {
            from: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            to: poly.token,
            data: transferCalldata({ to: p.address, amount: 250_000_000n }),
            value: "0x0",
          },
        ],
      },
    ]);

    // 1 of 2.5 arrives on Polygon: the live update keeps Polygon, for the remainder.
    await poly.submitTransfer({ token: poly.token, from: PAYER, to: p.address, value: tokens(1) });
    await poly.mine(1);
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Partially paid",
    );
    expect(await current(page)).toBe("Polygon");
    expect(await page.locator("#amount").textContent()).toBe("1.5");
    expect(await qrOf(page)).toBe(uriOn(poly, 31338, p.address, 150_000_000n));
    await page.screenshot({ path: join(SHOTS, "partial-polygon-en-360.png"), fullPage: true });

    // The language switch keeps the network.
    expect(await page.getByRole("link", { name: "Español" }).getAttribute("href")).toBe(
      "?lang=es&network=polygon",
    );
    await page.getByRole("link", { name: "Español" }).click();
    await page.waitForURL(/lang=es/);
    expect(await page.locator("#networks-label").textContent()).toBe("Pagar en");
    expect(await current(page)).toBe("Polygon");
    expect(await page.locator(".network").textContent()).toBe("0xBTC en Ethereum o Polygon");
    expect(await page.locator(".send-only").textContent()).toBe(
      "Envía solo en Polygon. El código QR y los botones de abajo son para Polygon.",
    );

    // The rest on Ethereum completes it: the receipt names the completing transfer's network.
    await eth.mint(eth.token, PAYER, tokens(2));
    const rest = await eth.submitTransfer({
      token: eth.token,
      from: PAYER,
      to: p.address,
      value: 150_000_000n,
    });
    // NOTE: across networks, transfers count in block-time order, and the two
    // anvils date their blocks independently (a block mined within the same
    // second as the last is dated a second later): Ethereum's block is dated
    // after Polygon's here, so that it is the completing one.
    const polygonTime = (await poly.client.getBlock()).timestamp;
    await anvilCall(eth.rpcUrl, "evm_setNextBlockTimestamp", [Number(polygonTime) + 10]);
    await Promise.all([eth.mine(3), poly.mine(1)]);
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Pagado. ¡Gracias!",
    );
    expect(await page.locator(".receipt dd").allTextContents()).toEqual([
      "2.5 0xBTC",
      "Ethereum",
      rest,
      expect.stringMatching(/ UTC$/),
    ]);
    await page.screenshot({ path: join(SHOTS, "paid-es-360.png"), fullPage: true });
    expect(requests.offMachine()).toEqual([]);
  });

  test("without JavaScript: the links select the network (?network=polygon), an unknown one falls back to the first; a payment restricted to Polygon has no switch", async () => {
    const p = await create({ amount: "3" });
    const { page, requests } = await newPage({ javaScriptEnabled: false });
    await page.goto(p.checkout_url);
    expect(await current(page)).toBe("Ethereum");
    expect(await qrOf(page)).toBe(uriOn(eth, 31337, p.address, tokens(3)));
    await page.getByRole("link", { name: "Polygon" }).click();
    await page.waitForURL(/\?network=polygon$/);
    expect(await current(page)).toBe("Polygon");
    expect(await qrOf(page)).toBe(uriOn(poly, 31338, p.address, tokens(3)));
    expect(await page.getByRole("link", { name: "Open in wallet" }).getAttribute("href")).toBe(
      uriOn(poly, 31338, p.address, tokens(3)),
    );
    await page.getByRole("link", { name: "Ethereum" }).click();
    await page.waitForURL(/\?network=ethereum$/);
    expect(await qrOf(page)).toBe(uriOn(eth, 31337, p.address, tokens(3)));
    await page.goto(`${p.checkout_url}?network=solana`);
    expect(await current(page)).toBe("Ethereum");

    const restricted = await create({ amount: "1", networks: ["polygon"] });
    await page.goto(restricted.checkout_url);
    expect(await page.locator("nav.networks").count()).toBe(0);
    expect(await page.locator(".send-only").count()).toBe(0);
    expect(await page.locator(".network").textContent()).toBe("0xBTC on Polygon");
    expect(await qrOf(page)).toBe(uriOn(poly, 31338, restricted.address, tokens(1)));
    expect(await page.locator(".warning").textContent()).toBe(
      "Send only 0xBTC on Polygon to this address. Any other token, or 0xBTC on another network, is lost.",
    );
    // A network it does not accept is not offered, even when asked for.
    await page.goto(`${restricted.checkout_url}?network=ethereum`);
    expect(await qrOf(page)).toBe(uriOn(poly, 31338, restricted.address, tokens(1)));
    expect(requests.offMachine()).toEqual([]);
  });

  test("a page served from the cache is the page rendered afresh, on each network, both languages: open, partly paid on Polygon, restricted, unknown ?network=", async () => {
    const open = await create({ amount: "3" });
    const partial = await create({ amount: "3" });
    const hash = await poly.submitTransfer({
      token: poly.token,
      from: PAYER,
      to: partial.address,
      value: tokens(1),
    });
    await poly.mine(1);
    await poly.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    await waitFor(
      async () => (await statusOf(daemon.publicUrl, partial.id)).body.paid_amount === "1",
      { what: "the partial payment seen on Polygon" },
    );
    const restricted = await create({ amount: "1", networks: ["polygon"] });
    const hits = await expectCachedPagesAsRendered({
      payments: daemon.payments,
      ids: [open.id, partial.id, restricted.id],
      networks: new Map([
        [
          "ethereum",
          {
            chainId: 31337,
            token: eth.token,
            networkName: "Ethereum",
            symbol: "0xBTC",
            explorerUrl: undefined,
          },
        ],
        [
          "polygon",
          {
            chainId: 31338,
            token: poly.token,
            networkName: "Polygon",
            symbol: "0xBTC",
            explorerUrl: undefined,
          },
        ],
        [
          "solana",
          {
            chainId: 1,
            token: eth.token,
            networkName: "Solana",
            symbol: "0xBTC",
            explorerUrl: undefined,
          },
        ],
      ]),
    });
    expect(hits).toBeGreaterThan(0);
  });

  test("axe-core finds no serious or critical violation with the switch, in English and Spanish, and dark; screenshots at 360 and 1280 px", async () => {
    const p = await create({ amount: "2.5", description: "2 boxes of green tea" });
    const failures: string[] = [];
    const runs = [
      { lang: "en", colorScheme: "light" },
      { lang: "es", colorScheme: "light" },
      { lang: "en", colorScheme: "dark" },
    ] as const;
    for (const { lang, colorScheme } of runs) {
      const { page } = await newPage({ bypassCSP: true, colorScheme });
      await page.goto(`${p.checkout_url}?lang=${lang}&network=polygon`);
      // NOTE: axe is injected as a script, which the page's CSP forbids
      // (this context bypasses it; the CSP is tested in checkout-browser).
      await page.addScriptTag({ content: AXE });
      const violations = (await page.evaluate(async () => {
        // biome-ignore lint/suspicious/noExplicitAny: axe is injected at run time
        const axe = (window as any).axe;
        return (await axe.run(document, { resultTypes: ["violations"] })).violations;
      })) as Array<{ id: string; impact: string; nodes: unknown[] }>;
      for (const v of violations) {
        if (v.impact === "serious" || v.impact === "critical") {
          failures.push(`${lang} ${colorScheme}: ${v.id} (${v.nodes.length} nodes)`);
        }
      }
      const name = `waiting-${lang}${colorScheme === "dark" ? "-dark" : ""}`;
      // The phone's first screen (the switch and the QR above the fold), the whole page, the desktop.
      await page.screenshot({ path: join(SHOTS, `${name}-360.png`) });
      await page.screenshot({ path: join(SHOTS, `${name}-360-full.png`), fullPage: true });
      if (colorScheme === "light") {
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.screenshot({ path: join(SHOTS, `${name}-1280.png`) });
      }
    }
    expect(failures).toEqual([]);
  });
});
