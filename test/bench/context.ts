/** What every phase of the bench gets. */
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import type { ConfigInput } from "../../src/config/index.ts";
import type { TestChain } from "../helpers/index.ts";
import type { ProfileOption } from "./children.ts";
import type { Figure } from "./report.ts";

export type BenchContext = {
  /** Seconds-long run that only checks every figure is produced. */
  smoke: boolean;
  /** A temp folder for databases and logs, deleted at the end. */
  workDir: string;
  /** anvil with the test token, mining only when told (shared by the daemon phases). */
  chain: TestChain;
  /** --cpu-prof options for a child process, when the bench runs with --profile DIR. */
  profile(name: string): ProfileOption;
  emit(figure: Figure): void;
};

/** The figures a phase promises, so a phase that fails still prints them (value null, ok false). */
export type Phase = {
  name: string;
  figures: Array<{ name: string; unit: string }>;
  run(context: BenchContext): Promise<void>;
};

/**
 * The daemon's config for a bench phase: defaults everywhere except ports,
 * chain, database, the rate limit and loopback postbacks. `dbPath` is a
 * SQLite file, or `{ url }` a PostgreSQL database.
 */
export function daemonConfig(
  chain: { rpcUrl: string; token: string },
  dbPath: string | { url: string },
  chainOverrides: Partial<ConfigInput["chain"]> = {},
): ConfigInput {
  return {
    chain: { rpcUrl: chain.rpcUrl, chainId: 31337, token: chain.token, ...chainOverrides },
    wallet: { xpub: DEV_XPUB },
    private: { host: "127.0.0.1", port: 0 },
    // NOTE: all the load comes from one IP here; real shoppers each poll from
    // their own, so the per-IP limit is off to measure serving capacity.
    public: { host: "127.0.0.1", port: 0, rateLimit: { windowMs: 60_000, max: 0 } },
    ops: { port: 0 },
    // The bench's postback receiver listens on loopback (refused by default).
    postbacks: { allowTargets: ["127.0.0.1/32"] },
    database: typeof dbPath === "string" ? { path: dbPath } : { url: dbPath.url },
  };
}

/** A network of {@link daemonNetworksConfig}: its name, chain id and chain, and overrides. */
export type BenchNetwork = {
  name: string;
  chainId: number;
  chain: { rpcUrl: string; token: string };
  overrides?: Partial<NonNullable<ConfigInput["networks"]>[number]>;
};

/**
 * The daemon's config for a phase that watches several networks: as
 * {@link daemonConfig}, with `networks` (each network's chain settings at
 * their defaults but the overrides) instead of `chain`.
 */
export function daemonNetworksConfig(
  networks: readonly BenchNetwork[],
  dbPath: string,
): ConfigInput {
  const { chain: _chain, ...rest } = daemonConfig(
    networks[0]?.chain ?? { rpcUrl: "", token: "" },
    dbPath,
  );
  return {
    ...rest,
    networks: networks.map(({ name, chainId, chain, overrides }) => ({
      name,
      chainId,
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      ...overrides,
    })),
  };
}

/** The chain id of the bench's second network, "polygon" (the shared chain is 31337, "ethereum"). */
export const SECOND_CHAIN_ID = 31338;
