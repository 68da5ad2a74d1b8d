/**
 * The checkout page's cache against fresh renders: two checkouts over the
 * same payments (the daemon's own payment logic, in process), one keeping
 * pages and one rendering every request (pageCacheBytes 0). Every page asked
 * twice of the first (a render, then the cache) must be, byte for byte and
 * header for header but the clock's, what the second renders.
 */
import { expect } from "vitest";
import type { Payments } from "../../src/payments/index.ts";
import { type CheckoutNetwork, createCheckout } from "../../src/public/checkout/index.ts";

type Request = Parameters<ReturnType<typeof createCheckout>["page"]>[1];

function request(id: string, lang: string, network: string | undefined, gzip: boolean): Request {
  const query = new URLSearchParams({ lang });
  if (network) query.set("network", network);
  return {
    path: `/${id}`,
    query,
    cookie: undefined,
    acceptLanguage: undefined,
    acceptEncoding: gzip ? "gzip, deflate, br" : undefined,
  };
}

/**
 * Asks for each page of `ids` in each language (and each of `networks`,
 * when given) from a caching checkout and from one that keeps nothing, and
 * checks they answer the same; returns how many pages came from the cache.
 */
export async function expectCachedPagesAsRendered({
  payments,
  ids,
  networks,
}: {
  payments: Pick<Payments, "checkout">;
  ids: readonly string[];
  /** Network name → what the page shows of it; the first is the default. */
  networks?: ReadonlyMap<string, CheckoutNetwork>;
}): Promise<number> {
  const first = networks ? [...networks.values()][0] : undefined;
  const options = {
    payments,
    settings: {
      shopName: "Tea & Co",
      support: "help@shop.example",
      redirectAfterPaidSeconds: 5,
      frameAncestors: [],
      chainId: first?.chainId ?? 31337,
      token: first?.token ?? "0x5fbdb2315678afecb367f032d93f642f64180aa3",
      networkName: first?.networkName ?? "Ethereum",
      symbol: first?.symbol ?? "0xBTC",
      explorerUrl: first?.explorerUrl,
    },
    networks,
    decimals: 8,
    language: "en" as const,
    themeColor: "#f7931a",
    now: () => 1_800_000_000_000,
  };
  const cached = createCheckout(options);
  const fresh = createCheckout({ ...options, pageCacheBytes: 0 });
  const names = networks ? [undefined, ...networks.keys()] : [undefined];
  for (const id of ids) {
    for (const lang of ["en", "es"]) {
      for (const network of names) {
        for (const gzip of [true, false]) {
          const what = `${id} ${lang} ${network ?? "(default network)"} ${gzip ? "gzip" : "plain"}`;
          const asked = request(id, lang, network, gzip);
          const rendered = await fresh.page(id, asked);
          expect(rendered.status, what).toBe(200);
          for (const answer of [await cached.page(id, asked), await cached.page(id, asked)]) {
            expect(answer.headers, what).toEqual(rendered.headers);
            expect(answer.body.equals(rendered.body), what).toBe(true);
          }
        }
      }
    }
  }
  expect(fresh.pageCacheStats()).toEqual({ hits: 0, misses: 0, entries: 0, bytes: 0 });
  // Each page asked four times: rendered at most once, then served from the cache (a
  // plain answer unzips the same entry; the default network shares its network's).
  const pages = ids.length * 2 * names.length;
  const { hits, misses } = cached.pageCacheStats();
  expect(hits + misses).toBe(pages * 4);
  expect(hits).toBeGreaterThanOrEqual(pages * 3);
  return hits;
}
