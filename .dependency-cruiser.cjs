/**
 * Which room of src/ may import which: `npm run deps` (part of `npm test`)
 * fails on any import these rules forbid. test/project/layering.test.ts proves that
 * each rule fires, on a small tree of files it writes.
 *
 * Every import counts, `import type` included: the parser here (swc, because
 * the TypeScript 7 package has no compiler API for dependency-cruiser) does not
 * tell type-only imports apart. That is also the rule we want: a type shared
 * by two rooms belongs to the lower one, or the importer declares the shape it
 * needs (as rpc/ does with PostbackControl).
 *
 * @type {import("dependency-cruiser").IConfiguration}
 */

/** Rooms that the upper ones build on; they never import upward. */
const LOWER = "^src/(store|chain|addresses|internal)/";
/** Rooms and files that use the lower ones: the logic, the ports, the wiring. */
const UPPER = "^src/((payments|rpc|public|postbacks|config|cli|ops)/|daemon[.]ts$)";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment:
        "An import cycle makes load order decide what is undefined at start, and welds two modules into one that cannot be understood or tested apart.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "chain-knows-no-payments",
      comment:
        "chain/ knows tokens and blocks, not payments: it emits batches and rewinds to a sink. Importing payments, the store or a port would tie reorg logic to one use of it (docs/development.md).",
      severity: "error",
      from: { path: "^src/chain/" },
      to: { path: "^src/(payments|store|rpc|public|postbacks)/" },
    },
    {
      name: "lower-rooms-stay-low",
      comment:
        "store/, chain/, addresses/ and internal/ are built on by everything above them; an import upward (payments, a port, config, the wiring) would make a low room depend on what depends on it. They take values, not the config object.",
      severity: "error",
      from: { path: LOWER },
      to: { path: UPPER },
    },
    {
      name: "payments-below-the-ports",
      comment:
        "payments/ decides what a payment is; the ports and the postback sender call it. It takes values and callbacks, so it never imports a port, the config or the wiring.",
      severity: "error",
      from: { path: "^src/payments/" },
      to: { path: "^src/((rpc|public|postbacks|config|cli|ops)/|daemon[.]ts$)" },
    },
    {
      name: "payments-sees-the-storage-interface",
      comment:
        "payments/ reaches the database through store/storage.ts (the interface both backends implement, and the rows they share); a database handle, a migration or a backend's module (store/sqlite/, store/postgres/) imported there would tie the payment logic to one backend.",
      severity: "error",
      from: { path: "^src/payments/" },
      to: { path: "^src/store/", pathNot: "^src/store/storage[.]ts$" },
    },
    {
      name: "backends-stay-apart",
      comment:
        "store/sqlite/ and store/postgres/ each implement store/storage.ts on their own; what both need lives in storage.ts. The one crossing is postgres/copy.ts, which reads a SQLite database to copy it (`migrate-db`).",
      severity: "error",
      from: { path: "^src/store/(sqlite|postgres)/", pathNot: "^src/store/postgres/copy[.]ts$" },
      to: { path: "^src/store/(sqlite|postgres)/", pathNot: "^src/store/$1/" },
    },
    {
      name: "ports-stay-apart",
      comment:
        "rpc/, public/ and postbacks/ are peers: none imports another. What two of them share lives in a lower room (IP matching is internal/allowlist.ts); what one needs from another is injected by daemon.ts (rpc/ gets PostbackControl).",
      severity: "error",
      from: { path: "^src/(rpc|public|postbacks)/" },
      to: { path: "^src/(rpc|public|postbacks)/", pathNot: "^src/$1/" },
    },
    {
      name: "ops-is-imported-by-the-wiring-only",
      comment:
        "ops/ reads every room (health, metrics); no room reads it back. A port or the config importing ops/ would tie the logic to how it is watched and close a cycle through the reader. daemon.ts hands ops/ what it reads (and the CLI may use its checks).",
      severity: "error",
      from: { path: "^src/(rpc|public|postbacks|config)/" },
      to: { path: "^src/ops/" },
    },
    {
      name: "only-cli-starts-the-daemon",
      comment:
        "One place wires the program: daemon.ts builds it and only the CLI's commands (serve, dev) start it. A room importing daemon.ts would depend on every room at once.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/daemon[.]ts$" },
    },
    {
      name: "cli-is-the-top",
      comment:
        "cli/ owns process.argv, signals and process.exit (STYLE.md); nothing below it may reach for them.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "src-not-to-test",
      comment:
        "The daemon ships without test/ helpers and fixtures; production code importing them would break there or smuggle test behaviour in.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^test/" },
    },
    {
      name: "src-not-to-dev-deps",
      comment:
        "Production installs with `npm ci --omit=dev` (docs/production.md, Dockerfile): a devDependency imported from src/ is missing there. The one exception is the worker bootstraps (*-worker.mjs): they load a worker's TypeScript through tsx when the daemon runs from the sources, and the compiled daemon never loads them (internal/background.ts workerModule).",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/.+-worker[.]mjs$" },
      to: { dependencyTypes: ["npm-dev"] },
    },
    {
      name: "src-resolvable",
      comment:
        "Every import must resolve to a file. One that does not is invisible to the rules above, so a path the cruiser cannot follow would let a forbidden import through.",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // NOTE: TypeScript 7 ships no compiler API, so dependency-cruiser parses
    // .ts with @swc/core (a devDependency for this only). Without a parser it
    // would skip every .ts file and find nothing to forbid; the layering test
    // fails then.
    parser: "swc",
    doNotFollow: { path: "node_modules" },
    enhancedResolveOptions: {
      extensions: [".ts", ".mjs", ".js", ".json"],
      exportsFields: ["exports"],
      conditionNames: ["import", "node", "default"],
      mainFields: ["module", "main", "types"],
    },
  },
};
