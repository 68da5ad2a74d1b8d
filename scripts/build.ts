/**
 * `npm run build`: compiles the daemon to JavaScript in dist/ and copies
 * beside it the files the code reads at run time relative to its own module.
 * Production (the npm package, the Docker image, systemd) runs dist/; the
 * repo's tests and `npm start` run the TypeScript sources (bin/0xbtcpay).
 *
 * Layout: dist/src/… mirrors src/, dist/contracts-abi/ the token ABI (with
 * TestToken.json, which tsc emits because index.ts imports it), dist/config/
 * the dev chain's config. The build fails if a file that the compiled code
 * names with `new URL("…", import.meta.url)` or `workerModule("…",
 * import.meta.url)` is missing from dist/.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const { values: args } = parseArgs({
  options: { out: { type: "string" }, bench: { type: "boolean", default: false } },
});
const dist = resolve(root, args.out ?? "dist");

/** Files read at run time, not imported, so tsc does not emit them. */
const COPIED: { from: string; why: string }[] = [
  { from: "src/store/sqlite/migrations", why: "SQLite migrations (store/sqlite/index.ts)" },
  { from: "src/store/postgres/migrations", why: "PostgreSQL migrations (store/postgres/index.ts)" },
  { from: "src/public/checkout/assets", why: "checkout page script and styles" },
  { from: "config/dev.json", why: "config of `0xbtcpay dev` (cli/commands/dev.ts)" },
];

rmSync(dist, { recursive: true, force: true });
// NOTE: TypeScript 7's tsc is a native binary behind the package's bin
// script; resolving it keeps the build independent of PATH.
const tsc = join(
  dirname(createRequire(import.meta.url).resolve("typescript/package.json")),
  "bin",
  "tsc",
);
execFileSync(
  process.execPath,
  [
    tsc,
    "-p",
    join(root, args.bench ? "tsconfig.bench-build.json" : "tsconfig.build.json"),
    "--outDir",
    dist,
  ],
  { cwd: root, stdio: "inherit" },
);
for (const { from } of COPIED) {
  cpSync(join(root, from), join(dist, from), { recursive: true });
}

function* jsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(path);
    else if (entry.name.endsWith(".js")) yield path;
  }
}

const missing: string[] = [];
let checked = 0;
for (const file of jsFiles(dist)) {
  const source = readFileSync(file, "utf8");
  const base = pathToFileURL(file);
  const targets = [
    ...[...source.matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)].map((m) => m[1] ?? ""),
    ...[...source.matchAll(/workerModule\("([^"]+)", import\.meta\.url\)/g)].map(
      (m) => `./${m[1]}.js`,
    ),
  ];
  for (const target of targets) {
    checked++;
    const path = fileURLToPath(new URL(target, base));
    if (!existsSync(path))
      missing.push(`${relative(root, file)}: ${target} (${relative(root, path)})`);
  }
}
if (missing.length > 0) {
  process.stderr.write(
    `build: files the compiled code reads are missing:\n  ${missing.join("\n  ")}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  `build: ${relative(root, dist)}/ written${args.bench ? " (with the bench)" : ""}; copied ${COPIED.map((c) => c.from).join(", ")}; ${checked} run-time file references resolved\n`,
);
