/// <reference lib="dom" />
/**
 * The hosted checkout page in a real browser (Debian's Chromium through
 * playwright-core) against a real daemon on anvil: the QR decodes to the
 * exact EIP-681 link, payments show up live, the wallet button speaks
 * EIP-1193, every screen in both languages passes axe-core, works without
 * JavaScript, and nothing is requested off the machine. Screenshots of each
 * screen at 360 and 1280 px, in English and Spanish, go to
 * test-output/checkout/.
 */

import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { Daemon } from "../../src/daemon.ts";
import { erc20TransferUri, transferCalldata } from "../../src/public/checkout/uri.ts";
import { decodeQr, launchBrowser, recordRequests } from "../helpers/browser.ts";
import { expectCachedPagesAsRendered } from "../helpers/checkout.ts";
import {
  anvilCall,
  chainAlignedClock,
  payInNewBlock,
  rpc,
  startReceiver,
  startTestChain,
  startTestDaemon,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const SHOTS = join(process.cwd(), "test-output", "checkout");
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let chain: TestChain;
let browser: Browser;
let daemon: Daemon;
let shop: Awaited<ReturnType<typeof startReceiver>>;
let clock: Awaited<ReturnType<typeof chainAlignedClock>>;
const dir = tempDir();
const contexts: BrowserContext[] = [];
/** Shop pages that embed the checkout page in an iframe: one allowed by frameAncestors, one not. */
let shopPages: Server;
let strangerPages: Server;
const originOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/** A page that embeds `?src=` in an iframe and records the messages it gets. */
async function embeddingServer(): Promise<Server> {
  const server = createServer((req, res) => {
    const src = new URL(req.url ?? "/", "http://x").searchParams.get("src") ?? "";
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><title>shop</title><script>
      window.received = [];
      addEventListener("message", (e) => window.received.push({ origin: e.origin, data: e.data }));
    </script><iframe id="checkout" src="${src.replace(/"/g, "&quot;")}" width="400" height="700"></iframe>`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000_000));
  shop = await startReceiver();
  shopPages = await embeddingServer();
  strangerPages = await embeddingServer();
  clock = await chainAlignedClock(chain);
  daemon = await startTestDaemon(
    { rpcUrl: chain.rpcUrl, token: chain.token },
    join(dir.path, "checkout.sqlite"),
    {
      payments: { expiresAfter: "1h" },
      checkout: {
        shopName: "Tea & Co",
        support: "help@shop.example",
        redirectAfterPaidSeconds: 1,
        frameAncestors: [originOf(shopPages)],
      },
    },
    { clock },
  );
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await daemon?.stop();
  await shop?.close();
  shopPages?.close();
  strangerPages?.close();
  await chain?.stop();
  dir.cleanup();
});

async function newPage(
  options: Parameters<Browser["newContext"]>[0] = {},
): Promise<{ page: Page; requests: ReturnType<typeof recordRequests>; context: BrowserContext }> {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, ...options });
  contexts.push(context);
  const requests = recordRequests(context);
  const page = await context.newPage();
  return { page, requests, context };
}

async function create(params: Record<string, unknown> = {}, on: Daemon = daemon) {
  const { json } = await rpc(on.privateUrl, {
    jsonrpc: "2.0",
    id: 1,
    method: "start_payment",
    params: { amount: "2", ...params },
  });
  if (!json.result) throw new Error(JSON.stringify(json));
  return json.result as {
    id: string;
    address: Hex;
    amount: string;
    expires_at: number;
    checkout_url: string;
  };
}

const pay = (to: Hex, value: bigint) => payInNewBlock(chain, { to, value });

const headline = (page: Page) => page.locator("#live").textContent();

async function axeViolations(page: Page) {
  // NOTE: axe is injected as a script, which the page's CSP forbids: these
  // pages come from a context with bypassCSP (the CSP itself is tested apart).
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    // biome-ignore lint/suspicious/noExplicitAny: axe is injected at run time
    const axe = (window as any).axe;
    return axe.run(document, { resultTypes: ["violations"] });
  });
  return (result.violations as Array<{ id: string; impact: string; nodes: unknown[] }>)
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes)`);
}

describe("the checkout page in Chromium", () => {
  test("the QR decodes to the exact EIP-681 transfer; the address-only switch shows the bare address", async () => {
    const p = await create({ amount: "2.5" });
    expect(p.checkout_url).toBe(`${daemon.publicUrl}/${p.id}`);
    const { page, requests } = await newPage();
    await page.goto(p.checkout_url);
    const png = await page.locator("figure.qr-payment svg").screenshot();
    expect(decodeQr(png)).toBe(
      erc20TransferUri({ token: chain.token, chainId: 31337, to: p.address, amount: 250_000_000n }),
    );
    expect(decodeQr(png)).toBe(
      `ethereum:${chain.token}@31337/transfer?address=${p.address}&uint256=250000000`,
    );
    expect(await page.locator("a.button", { hasText: "Open in wallet" }).getAttribute("href")).toBe(
      decodeQr(png),
    );
    // One network (the single chain section): no network switch.
    expect(await page.locator("nav.networks, .send-only").count()).toBe(0);
    await expect(page.locator("figure.qr-address").isVisible()).resolves.toBe(false);
    await page.locator("label[for=qr-address]").click();
    expect(decodeQr(await page.locator("figure.qr-address svg").screenshot())).toBe(p.address);
    await expect(page.locator("figure.qr-payment").isVisible()).resolves.toBe(false);
    // QR above the fold on a 360 px phone.
    const box = await page.locator("figure.qr-address").boundingBox();
    expect((box?.y ?? 1e9) + (box?.height ?? 0)).toBeLessThanOrEqual(740);
    expect(requests.offMachine()).toEqual([]);
  });

  test("paid half, then the rest: partial, confirming, paid, live without a reload, then back to the shop", async () => {
    const p = await create({ amount: "2", return_url: `${shop.url}?order=7` });
    const { page, requests } = await newPage();
    await page.goto(p.checkout_url);
    expect(await headline(page)).toBe("Waiting for your payment");
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });
    await pay(p.address, tokens(1));
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Partially paid",
    );
    expect(await page.locator("#amount").textContent()).toBe("1");
    expect(decodeQr(await page.locator("figure.qr-payment svg").screenshot())).toBe(
      erc20TransferUri({ token: chain.token, chainId: 31337, to: p.address, amount: tokens(1) }),
    );
    const hash = await pay(p.address, tokens(1));
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Payment detected",
    );
    expect(await page.locator("#screen .note").textContent()).toBe(
      "Waiting for confirmations: 1 of 3. You can close this page; the shop will be told.",
    );
    // Same document all along: no reload.
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    await chain.mine(2);
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Paid. Thank you!",
    );
    expect(await page.locator(".receipt").textContent()).toContain(hash);
    await page.waitForURL(`${shop.url}?order=7`);
    expect(requests.offMachine()).toEqual([]);
  });

  test("a browser wallet (EIP-6963) gets wallet_switchEthereumChain, then eth_sendTransaction with the exact calldata; a rejection leaves the page usable", async () => {
    const p = await create({ amount: "0.29" });
    const { page, context } = await newPage();
    await context.addInitScript(() => {
      const calls: Array<{ method: string; params?: unknown }> = [];
      let reject = true;
      const provider = {
        request: async ({ method, params }: { method: string; params?: unknown }) => {
          calls.push({ method, params });
          if (method === "eth_requestAccounts")
            return ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8"];
          if (method === "wallet_switchEthereumChain") return null;
          if (method === "eth_sendTransaction") {
            if (reject) {
              reject = false;
              throw Object.assign(new Error("User rejected the request."), { code: 4001 });
            }
            return `0x${"ab".repeat(32)}`;
          }
          throw new Error(`unexpected ${method}`);
        },
      };
      (window as unknown as { walletCalls: typeof calls }).walletCalls = calls;
      const announce = () =>
        window.dispatchEvent(
          new CustomEvent("eip6963:announceProvider", {
            detail: Object.freeze({
              info: {
                uuid: "test-wallet",
                name: "Test Wallet",
                icon: "data:,",
                rdns: "test.wallet",
              },
              provider,
            }),
          }),
        );
      window.addEventListener("eip6963:requestProvider", announce);
      announce();
    });
    await page.goto(p.checkout_url);
    const button = page.locator("#wallet-pay");
    await expect(button.textContent()).resolves.toBe("Pay with Test Wallet");
    await button.click();
    await page.waitForFunction(() =>
      document.querySelector("#wallet-message")?.textContent?.includes("rejected"),
    );
    expect(await page.locator("#wallet-message").textContent()).toBe(
      "You rejected the request in your wallet. Nothing was sent.",
    );
    expect(await button.isEnabled()).toBe(true);
    await button.click();
    await page.waitForFunction(() =>
      document.querySelector("#wallet-message")?.textContent?.startsWith("Transaction submitted"),
    );
    const calls = await page.evaluate(
      () => (window as unknown as { walletCalls: unknown[] }).walletCalls,
    );
    const send = {
      method: "eth_sendTransaction",
      params: [
        {
          from: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
          to: chain.token,
          data: transferCalldata({ to: p.address, amount: 29_000_000n }),
          value: "0x0",
        },
      ],
    };
    const switchChain = { method: "wallet_switchEthereumChain", params: [{ chainId: "0x7a69" }] };
    expect(calls).toEqual([
      { method: "eth_requestAccounts" },
      switchChain,
      send,
      { method: "eth_requestAccounts" },
      switchChain,
      send,
    ]);
    // The page trusts only the daemon: still waiting.
    expect(await headline(page)).toBe("Waiting for your payment");
  });

  test("wallet errors: an unknown chain (4902) and a request already open (-32002) each get their message; copy buttons copy", async () => {
    const p = await create({ amount: "1" });
    const { page, context } = await newPage();
    await context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await context.addInitScript(() => {
      const errors = [
        { on: "wallet_switchEthereumChain", code: 4902, message: "Unrecognized chain ID" },
        { on: "eth_requestAccounts", code: -32002, message: "Request already pending" },
      ];
      (window as unknown as { ethereum: unknown }).ethereum = {
        request: async ({ method }: { method: string }) => {
          const error = errors[0]?.on === method ? errors.shift() : undefined;
          if (error) throw Object.assign(new Error(error.message), { code: error.code });
          if (method === "eth_requestAccounts")
            return ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8"];
          return null;
        },
      };
    });
    await page.goto(p.checkout_url);
    const button = page.locator("#wallet-pay");
    await expect(button.textContent()).resolves.toBe("Pay with browser wallet");
    const message = page.locator("#wallet-message");
    await button.click();
    await page.waitForFunction(() =>
      document.querySelector("#wallet-message")?.textContent?.includes("does not know"),
    );
    expect(await message.textContent()).toBe(
      "Your wallet does not know Local chain (anvil) (chain id 31337). Add it to your wallet, then try again.",
    );
    await button.click();
    await page.waitForFunction(() =>
      document.querySelector("#wallet-message")?.textContent?.includes("already open"),
    );
    expect(await message.textContent()).toBe(
      "A request is already open in your wallet: finish or close it there.",
    );
    await page.getByRole("button", { name: "Copy address" }).click();
    await page.waitForFunction(
      () => document.querySelector("#wallet-message")?.textContent === "Copied.",
    );
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(p.address);
  });

  test("a description with markup is text; Spanish by Accept-Language and by ?lang=, remembered", async () => {
    const p = await create({ description: '<b id="x">bold</b><img src=x onerror="alert(1)">' });
    const { page, requests } = await newPage({
      locale: "es-MX",
      extraHTTPHeaders: { "accept-language": "es-MX,es;q=0.9" },
    });
    await page.goto(p.checkout_url);
    expect(await page.locator("html").getAttribute("lang")).toBe("es");
    expect(await headline(page)).toBe("Esperando tu pago");
    expect(await page.locator(".description").textContent()).toBe(
      'Concepto: <b id="x">bold</b><img src=x onerror="alert(1)">',
    );
    expect(await page.locator("#x").count()).toBe(0);
    await page.getByRole("link", { name: "English" }).click();
    await page.waitForURL(/lang=en/);
    expect(await headline(page)).toBe("Waiting for your payment");
    await page.goto(p.checkout_url);
    expect(await page.locator("html").getAttribute("lang")).toBe("en");
    await page.goto(`${p.checkout_url}?lang=es`);
    expect(await headline(page)).toBe("Esperando tu pago");
    expect(requests.offMachine()).toEqual([]);
  });

  test("without JavaScript: amount, address and QR are there, and the page refreshes itself", async () => {
    const p = await create({ amount: "3" });
    const { page } = await newPage({ javaScriptEnabled: false });
    await page.goto(p.checkout_url);
    expect(await page.locator("#amount").textContent()).toBe("3");
    expect(await page.locator("#address").textContent()).toBe(p.address);
    expect(decodeQr(await page.locator("figure.qr-payment svg").screenshot())).toBe(
      erc20TransferUri({ token: chain.token, chainId: 31337, to: p.address, amount: tokens(3) }),
    );
    // Paid meanwhile: the next refresh shows it.
    await pay(p.address, tokens(3));
    await chain.mine(2);
    await waitFor(async () => (await status(daemon.publicUrl, p.id)).body.status === "paid");
    await page.waitForEvent("load", { timeout: 15_000 });
    expect(await headline(page)).toBe("Paid. Thank you!");
  });

  test("SSE refused: the page falls back to polling status.json and still goes live", async () => {
    const p = await create({ amount: "1" });
    const { page } = await newPage();
    await page.route("**/events", (route) => route.fulfill({ status: 503, body: "busy" }));
    const polled = page.waitForRequest((request) => request.url().endsWith("/status.json"));
    await page.goto(p.checkout_url);
    await polled;
    await pay(p.address, tokens(1));
    await page.waitForFunction(
      () => document.querySelector("#live")?.textContent === "Payment detected",
    );
  });

  test("embedded by an allowed shop origin it posts {type, id, status} to the parent on each change; other origins cannot frame it", async () => {
    const p = await create({ amount: "1" });
    const { page } = await newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${originOf(shopPages)}/?src=${encodeURIComponent(p.checkout_url)}`);
    const frame = page.frameLocator("#checkout");
    await expect(frame.locator("#live").textContent()).resolves.toBe("Waiting for your payment");
    await pay(p.address, tokens(1));
    await page.waitForFunction(() =>
      (window as unknown as { received: Array<{ data: { status: string } }> }).received.some(
        (m) => m.data.status === "seen",
      ),
    );
    const received = await page.evaluate(
      () => (window as unknown as { received: unknown[] }).received,
    );
    expect(received[0]).toEqual({
      origin: new URL(p.checkout_url).origin,
      data: { type: "0xbtcpay:status", id: p.id, status: "waiting" },
    });
    expect(received).toContainEqual({
      origin: new URL(p.checkout_url).origin,
      data: { type: "0xbtcpay:status", id: p.id, status: "seen" },
    });
    const headers = (await fetch(p.checkout_url)).headers;
    expect(headers.get("content-security-policy")).toContain(
      `frame-ancestors ${originOf(shopPages)}`,
    );
    expect(headers.get("x-frame-options")).toBeNull();

    const other = await create({ amount: "1" });
    await page.goto(`${originOf(strangerPages)}/?src=${encodeURIComponent(other.checkout_url)}`);
    const framed = page.frames().find((f) => f !== page.mainFrame());
    expect(await framed?.locator("#live").count()).toBe(0);
    expect(
      await page.evaluate(() => (window as unknown as { received: unknown[] }).received),
    ).toEqual([]);
  });

  test("the countdown follows the server's clock (Server-Timing), not the browser's, and the page's bytes carry no time", async () => {
    const created = await create({ expires_in: 3600 });
    const first = await fetch(`${daemon.publicUrl}/${created.id}`);
    const firstBody = await first.text();
    // The server's clock 20 minutes ahead of the browser's: 40 minutes are left by it.
    clock.skewMs += 20 * 60_000;
    try {
      const again = await fetch(`${daemon.publicUrl}/${created.id}`);
      expect(await again.text()).toBe(firstBody);
      expect(again.headers.get("server-timing")).toMatch(/^clock;desc="\d{13}"$/);
      const { page } = await newPage();
      await page.goto(`${daemon.publicUrl}/${created.id}`);
      const left = await waitFor(
        async () => {
          const text = (await page.locator("#countdown").textContent()) ?? "";
          return /^\d+:\d\d(?::\d\d)?$/.test(text) ? text : undefined;
        },
        { what: "the countdown running" },
      );
      const [minutes] = left.split(":").map(Number);
      expect(minutes).toBeGreaterThanOrEqual(38);
      expect(minutes).toBeLessThanOrEqual(40);
    } finally {
      clock.skewMs -= 20 * 60_000;
    }
  });

  test("a malformed or unknown id is a 404 page in the chosen language", async () => {
    const { page } = await newPage();
    const unknown = await page.goto(`${daemon.publicUrl}/0123456789abcdef?lang=es`);
    expect(unknown?.status()).toBe(404);
    expect(await page.locator("h1").textContent()).toBe("Pago no encontrado");
    const malformed = await page.goto(`${daemon.publicUrl}/not-an-id?lang=en`);
    expect(malformed?.status()).toBe(404);
    expect(await page.locator("h1").textContent()).toBe("Payment not found");
  });
});

describe("every screen: axe-core, both languages, screenshots at 360 and 1280 px", () => {
  // A daemon without the automatic redirect, so the paid screen stays put.
  let screens: Daemon;
  const screensDir = tempDir();
  beforeAll(async () => {
    screens = await startTestDaemon(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      join(screensDir.path, "screens.sqlite"),
      {
        payments: { expiresAfter: "1h" },
        checkout: { shopName: "Tea & Co", support: "help@shop.example" },
      },
      { clock },
    );
  });
  afterAll(async () => {
    await screens?.stop();
    screensDir.cleanup();
  });
  const make = (params: Record<string, unknown>) => create(params, screens);

  /** Payments in each state the page can show (the expiry ones on a clock moved past their deadline). */
  async function paymentsInEveryState() {
    const seen = (
      id: string,
      what: string,
      check: (s: Awaited<ReturnType<typeof status>>["body"]) => boolean,
    ) => waitFor(async () => check((await status(screens.publicUrl, id)).body), { what });
    // A payment paid, then taken back by a reorg deeper than the confirmations.
    const reorged = await make({ amount: "2" });
    await pay(reorged.address, tokens(2));
    await chain.mine(2);
    await seen(reorged.id, "paid", (s) => s.status === "paid");
    const top = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
    await waitFor(async () => ((await screens.payments.scanPosition())?.blockNumber ?? -1) >= top, {
      what: "scanned to the head",
    });
    await anvilCall(chain.rpcUrl, "anvil_reorg", [3, []]);
    await seen(reorged.id, "reorged after paid", (s) => s.reorged_after_paid);
    // Then the ones whose deadline passes (the clock moves two minutes; the others have an hour).
    const expired = await make({ amount: "2", expires_in: 60 });
    const late = await make({ amount: "2", expires_in: 60 });
    clock.skewMs += 120_000;
    await seen(late.id, "expired", (s) => s.status === "expired");
    await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [late.expires_at + 90]);
    await pay(late.address, tokens(2));
    await chain.mine(2);
    await seen(late.id, "paid late", (s) => s.paid_late);
    await seen(expired.id, "expired", (s) => s.status === "expired");
    const paid = await make({ amount: "2", return_url: `${shop.url}?order=paid` });
    await pay(paid.address, tokens(2));
    await chain.mine(2);
    await seen(paid.id, "paid", (s) => s.status === "paid");
    const cancelled = await make({ amount: "2", cancel_url: `${shop.url}?order=cancelled` });
    await rpc(screens.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "cancel_payment",
      params: { id: cancelled.id },
    });
    const waiting = await make({ amount: "2", description: "2 boxes of green tea" });
    const partial = await make({ amount: "2" });
    await pay(partial.address, tokens(1) / 2n);
    // Last: one confirmation of three, and no block after it.
    const confirming = await make({ amount: "2" });
    await pay(confirming.address, tokens(2));
    await seen(confirming.id, "confirming", (s) => s.status === "seen" && s.confirmations === 1);
    return { waiting, partial, confirming, paid, cancelled, expired, paid_late: late, reorged };
  }

  test("a page served from the cache is the page rendered afresh: every screen, both languages, gzipped or not", async () => {
    const states = await paymentsInEveryState();
    const hits = await expectCachedPagesAsRendered({
      payments: screens.payments,
      ids: Object.values(states).map((p) => p.id),
    });
    expect(hits).toBeGreaterThan(0);
  });

  test("no serious or critical axe violation on any screen, in English and Spanish; screenshots taken", async () => {
    const states = await paymentsInEveryState();
    const expected: Record<string, { en: string; es: string }> = {
      waiting: { en: "Waiting for your payment", es: "Esperando tu pago" },
      partial: { en: "Partially paid", es: "Pago parcial" },
      confirming: { en: "Payment detected", es: "Pago detectado" },
      paid: { en: "Paid. Thank you!", es: "Pagado. ¡Gracias!" },
      cancelled: { en: "This payment was cancelled", es: "Este pago se ha cancelado" },
      expired: { en: "This payment has expired", es: "Este pago ha caducado" },
      paid_late: { en: "Paid late", es: "Pagado tarde" },
      reorged: { en: "Please contact the shop", es: "Contacta con la tienda" },
    };
    const failures: string[] = [];
    for (const lang of ["en", "es"] as const) {
      const { page, requests } = await newPage({ bypassCSP: true });
      for (const [name, payment] of Object.entries(states)) {
        await page.goto(`${payment.checkout_url}?lang=${lang}`);
        expect(await headline(page), `${name} ${lang}`).toBe(expected[name]?.[lang]);
        for (const violation of await axeViolations(page))
          failures.push(`${name} ${lang}: ${violation}`);
        for (const width of [360, 1280]) {
          await page.setViewportSize({ width, height: width === 360 ? 740 : 900 });
          await page.screenshot({
            path: join(SHOTS, `${name}-${lang}-${width}.png`),
            fullPage: true,
          });
        }
        await page.setViewportSize({ width: 360, height: 740 });
      }
      await page.goto(`${screens.publicUrl}/0000000000000000?lang=${lang}`);
      for (const violation of await axeViolations(page))
        failures.push(`not_found ${lang}: ${violation}`);
      for (const width of [360, 1280]) {
        await page.setViewportSize({ width, height: width === 360 ? 740 : 900 });
        await page.screenshot({
          path: join(SHOTS, `not_found-${lang}-${width}.png`),
          fullPage: true,
        });
      }
      expect(requests.offMachine()).toEqual([]);
    }
    expect(failures).toEqual([]);
  });

  test("dark mode and reduced motion keep AA contrast (axe, color-contrast)", async () => {
    const p = await create({ amount: "4" });
    const { page } = await newPage({
      bypassCSP: true,
      colorScheme: "dark",
      reducedMotion: "reduce",
    });
    await page.goto(p.checkout_url);
    expect(await axeViolations(page)).toEqual([]);
    await page.screenshot({ path: join(SHOTS, "waiting-en-360-dark.png"), fullPage: true });
  });

  test("the page's own CSP holds: no violation reported, and no inline script or style", async () => {
    const p = await create({ amount: "4" });
    const { page } = await newPage();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    await page.goto(p.checkout_url);
    await page.waitForFunction(
      () => !document.querySelector("button.copy")?.hasAttribute("hidden"),
    );
    expect(problems).toEqual([]);
    expect(await page.locator("[style]").count()).toBe(0);
    expect(await page.locator("script:not([src]):not([type='application/json'])").count()).toBe(0);
  });
});
