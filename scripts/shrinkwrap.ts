/**
 * `npm pack`'s prepack step, after the build: writes npm-shrinkwrap.json, the
 * production part of package-lock.json, so the package carries the exact
 * dependency tree that the repo's tests ran (a payment daemon's users get the
 * versions and integrity hashes it was tested with, not whatever a version
 * range resolves to on the day they install). npm installs a package's
 * shrinkwrap as it is, without asking the registry for package metadata, so
 * an install of the tarball needs nothing but the tarballs that the repo's
 * own `npm ci` already fetched (test/cli/package.test.ts installs it
 * offline). postpack removes the file again: in a checkout, package-lock.json
 * is the one lock, and a shrinkwrap beside it would take its place.
 *
 * The tree is walked, not filtered by the lock's flags: from the root's
 * `dependencies`, each package's `dependencies`, `optionalDependencies` and
 * required `peerDependencies`, found the way Node resolves them (the nearest
 * `node_modules/<name>` up the path). TypeScript, an optional peer of viem
 * that the lock marks devOptional, is left out, as are the development tools.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

type LockEntry = {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
  [key: string]: unknown;
};
type Lock = {
  name: string;
  version: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockEntry>;
};

const root = fileURLToPath(new URL("..", import.meta.url));
const target = join(root, "npm-shrinkwrap.json");
const { values: args } = parseArgs({ options: { remove: { type: "boolean", default: false } } });

if (args.remove) {
  rmSync(target, { force: true });
  process.exit(0);
}

/** The production part of a v3 lock: the packages reachable from the root's dependencies. */
function productionLock(lock: Lock): Lock {
  const packages = lock.packages;
  const rootEntry = packages[""];
  if (!rootEntry || lock.lockfileVersion !== 3) {
    throw new Error("package-lock.json: expected a lockfileVersion 3 lock with a root entry");
  }
  /** Where `name` resolves from the package at `from` ("" for the root). */
  const resolve = (from: string, name: string): string | undefined => {
    for (let dir = from; ; ) {
      const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
      if (packages[candidate]) return candidate;
      if (!dir) return undefined;
      const cut = dir.lastIndexOf("/node_modules/");
      dir = cut < 0 ? "" : dir.slice(0, cut);
    }
  };
  const kept = new Map<string, LockEntry>();
  const missing: string[] = [];
  const visit = (from: string, name: string, optional: boolean) => {
    const key = resolve(from, name);
    if (!key) {
      // An optional dependency for another platform is absent from the lock.
      if (!optional) missing.push(`${from || "(root)"} -> ${name}`);
      return;
    }
    if (kept.has(key)) return;
    const entry = packages[key] as LockEntry;
    kept.set(key, entry);
    for (const dep of Object.keys(entry.dependencies ?? {})) visit(key, dep, false);
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) visit(key, dep, true);
    for (const dep of Object.keys(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[dep]?.optional) visit(key, dep, false);
    }
  };
  for (const dep of Object.keys(rootEntry.dependencies ?? {})) visit("", dep, false);
  if (missing.length > 0) {
    throw new Error(`package-lock.json lacks dependencies: ${missing.join(", ")}`);
  }
  const { devDependencies: _dev, ...rootWithoutDev } = rootEntry;
  const out: Record<string, LockEntry> = { "": rootWithoutDev };
  for (const key of [...kept.keys()].sort()) {
    const { dev: _d, devOptional: _o, ...entry } = kept.get(key) as LockEntry;
    out[key] = entry;
  }
  return { ...lock, packages: out };
}

const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as Lock;
const production = productionLock(lock);
writeFileSync(target, `${JSON.stringify(production, null, 2)}\n`);
process.stdout.write(
  `shrinkwrap: npm-shrinkwrap.json written, ${Object.keys(production.packages).length - 1} production packages of the lock's ${Object.keys(lock.packages).length - 1}\n`,
);
