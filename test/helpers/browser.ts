/**
 * Debian's Chromium driven by playwright-core, for the checkout page's tests.
 * It never requests anything off the machine: background networking,
 * component updates and first-run tasks are off, and every test checks the
 * requests the page made.
 */
import { existsSync } from "node:fs";
import jsqrModule, { type QRCode } from "jsqr";
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import { PNG } from "pngjs";

/** Where Debian puts Chromium (`apt-get install chromium`; .ci/run installs it). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-default-apps",
      "--disable-sync",
      "--metrics-recording-only",
      "--no-default-browser-check",
    ],
  });
}

/** Every URL a context requested; `offMachine()` lists those not on 127.0.0.1. */
export function recordRequests(context: BrowserContext) {
  const urls: string[] = [];
  context.on("request", (request) => urls.push(request.url()));
  return {
    urls,
    offMachine: () =>
      urls.filter((url) => {
        if (url.startsWith("data:") || url === "about:blank") return false;
        try {
          return new URL(url).hostname !== "127.0.0.1";
        } catch {
          return true;
        }
      }),
  };
}

type Decode = (data: Uint8ClampedArray, width: number, height: number) => QRCode | null;
// NOTE: jsqr is CommonJS whose module.exports is the function itself.
const jsQR = ((jsqrModule as unknown as { default?: Decode }).default ??
  (jsqrModule as unknown as Decode)) as Decode;

/** Decodes the QR code in a PNG screenshot; undefined if none is found. */
export function decodeQr(png: Buffer): string | undefined {
  const image = PNG.sync.read(png);
  return (
    jsQR(
      new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length),
      image.width,
      image.height,
    )?.data ?? undefined
  );
}
