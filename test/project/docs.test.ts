/**
 * Docs that cannot drift: README.md and docs/*.md are read against the code.
 * Every link and anchor resolves; docs/configuration.md documents every key
 * the config schema accepts and no other; docs/api.md every JSON-RPC method
 * and error code and no other; docs/operations.md has a section for every
 * command, which that command's --help names.
 *
 * The formats these checks read are written down where they are used:
 * docs/development.md, "Docs that cannot drift".
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { describe, expect, test } from "vitest";
import type { z } from "zod";
import { COMMAND_DOCS, createProgram } from "../../src/cli/program.ts";
import { configSchema, ENV_OVERRIDES, RPC_URL_ENV_PREFIX } from "../../src/config/index.ts";
import type { Payments } from "../../src/payments/index.ts";
import * as jsonrpc from "../../src/rpc/jsonrpc.ts";
import { builtinMethods } from "../../src/rpc/methods/index.ts";
import { SCAN_NOT_STARTED } from "../../src/rpc/methods/start-payment.ts";
import { createMethodRegistry } from "../../src/rpc/registry.ts";
import { headings, links, plainText, section, slug, tables, within } from "../helpers/markdown.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

/** README.md and every docs/*.md, as paths from the repo's root. */
const DOC_FILES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`),
];

/** A heading that is one code span and nothing else: `` ### `postbacks retry` `` reads "postbacks retry". */
function codeHeading(text: string): string | undefined {
  return /^`([^`]+)`$/.exec(text)?.[1];
}

/** A table cell that is one code span and nothing else. */
function codeCell(cell: string | undefined): string | undefined {
  return cell === undefined ? undefined : /^`([^`]+)`$/.exec(cell)?.[1];
}

describe("the Markdown reader", () => {
  test("makes anchors as GitHub does: punctuation dropped, spaces to dashes, repeats numbered", () => {
    const markdown = [
      "# Building and checking the image without Docker: `npm run docker:verify`",
      "## Public port: `GET /<id>/status.json`",
      "## Two networks, one address: `dev --networks 2`",
      "### Rate limit",
      "```sh",
      "# not a heading",
      "```",
      "### Rate limit",
      "### Rate limit-1",
      "### Rate limit",
    ].join("\n");
    expect(headings(markdown).map((heading) => heading.anchor)).toEqual([
      "building-and-checking-the-image-without-docker-npm-run-dockerverify",
      "public-port-get-idstatusjson",
      "two-networks-one-address-dev---networks-2",
      "rate-limit",
      "rate-limit-1",
      "rate-limit-1-1",
      "rate-limit-2",
    ]);
    expect(slug(plainText("`start_payment` **params**"))).toBe("start_payment-params");
  });

  test("reads links outside code only", () => {
    const markdown = [
      "See [the API](docs/api.md#errors) and `[not](a-link.md)`.",
      "```md",
      "[not](a-link-either.md)",
      "```",
      '![a picture](img/x.png "title") [a site](https://example.com)',
    ].join("\n");
    expect(links(markdown)).toEqual([
      { target: "docs/api.md#errors", line: 1 },
      { target: "img/x.png", line: 5 },
      { target: "https://example.com", line: 5 },
    ]);
  });
});

describe("README.md", () => {
  const readme = read("README.md");

  test("is a front door: at most 250 lines, the two commands first, a link to every file of docs/", () => {
    const lines = readme.split("\n");
    expect(lines.length).toBeLessThanOrEqual(250);
    const top = lines.slice(0, 6).join("\n");
    expect(top).toContain("`npm ci && npm start`");
    expect(top).toContain("`npm test`");
    const linked = new Set(links(readme).map((link) => link.target.split("#")[0]));
    const unlinked = DOC_FILES.filter((file) => file !== "README.md" && !linked.has(file));
    expect(unlinked, "docs/ files the README does not link to").toEqual([]);
  });
});

describe("links and anchors", () => {
  test("every relative link of README.md and docs/*.md names a file that exists, and an anchor that its headings make", () => {
    const anchors = new Map(
      DOC_FILES.map((file) => [file, new Set(headings(read(file)).map((h) => h.anchor))]),
    );
    const problems: string[] = [];
    for (const file of DOC_FILES) {
      for (const { target, line } of links(read(file))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue;
        const hash = target.indexOf("#");
        const path = hash === -1 ? target : target.slice(0, hash);
        const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
        const resolved = path === "" ? file : normalize(join(dirname(file), decodeURI(path)));
        const where = `${file}:${line}: ${target}`;
        if (resolved.startsWith("..")) {
          problems.push(`${where}: leaves the repository`);
          continue;
        }
        let exists = false;
        try {
          statSync(join(ROOT, resolved));
          exists = true;
        } catch {}
        if (!exists) {
          problems.push(`${where}: no file ${resolved}`);
          continue;
        }
        if (anchor === undefined) continue;
        const known =
          anchors.get(resolved) ??
          (resolved.endsWith(".md")
            ? new Set(headings(read(resolved)).map((h) => h.anchor))
            : undefined);
        if (!known) {
          problems.push(`${where}: an anchor into ${resolved}, which is not Markdown`);
        } else if (!known.has(anchor)) {
          problems.push(`${where}: ${resolved} has no heading whose anchor is #${anchor}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

/** How a key of the schema is documented: a "key" needs a row; a "section" may have one. */
type KeyKind = "key" | "section";

/** What a schema stands for, past its optional, default and transform wrappers. */
type Structure =
  | { kind: "object"; shape: Record<string, z.ZodType> }
  | { kind: "list"; element: z.ZodType }
  | { kind: "record"; value: z.ZodType }
  | { kind: "leaf" };

function structureOf(schema: z.ZodType): Structure {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case "object":
      return { kind: "object", shape: def.shape as Record<string, z.ZodType> };
    case "array":
      return { kind: "list", element: def.element as z.ZodType };
    case "record":
      return { kind: "record", value: def.valueType as z.ZodType };
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "nonoptional":
    case "readonly":
    case "catch":
      return structureOf(def.innerType as z.ZodType);
    case "pipe": {
      // `.transform(f)` is a pipe into a transform (read its input);
      // `z.preprocess(f, schema)` a pipe from one (read its output).
      const input = def.in as z.ZodType;
      return structureOf(input._zod.def.type === "transform" ? (def.out as z.ZodType) : input);
    }
    case "lazy":
      return structureOf((def.getter as () => z.ZodType)());
    case "union":
    case "intersection":
    case "discriminatedUnion": {
      const options = (def.options as z.ZodType[] | undefined) ?? [
        def.left as z.ZodType,
        def.right as z.ZodType,
      ];
      if (options.every((option) => structureOf(option).kind === "leaf")) return { kind: "leaf" };
      throw new Error(
        `a ${def.type} of objects in the config schema: teach test/project/docs.test.ts which keys it has`,
      );
    }
    default:
      return { kind: "leaf" };
  }
}

/** Every key the config schema accepts, dotted (`chain.rpcUrl`; a list's entries: `networks[].name`). */
function configKeys(schema: z.ZodType, key = "", out = new Map<string, KeyKind>()) {
  const structure = structureOf(schema);
  if (structure.kind === "object") {
    if (key !== "") out.set(key, "section");
    for (const [name, field] of Object.entries(structure.shape)) {
      configKeys(field, key === "" ? name : `${key}.${name}`, out);
    }
  } else if (structure.kind === "list" || structure.kind === "record") {
    const inner = structure.kind === "list" ? structure.element : structure.value;
    if (structureOf(inner).kind === "leaf") {
      out.set(key, "key");
    } else {
      out.set(key, "section");
      configKeys(inner, `${key}${structure.kind === "list" ? "[]" : ".*"}`, out);
    }
  } else {
    out.set(key, "key");
  }
  return out;
}

describe("docs/configuration.md", () => {
  const file = "docs/configuration.md";
  const markdown = read(file);
  const schemaKeys = configKeys(configSchema);
  const keysSection = section(markdown, "Keys");
  const keyTables = tables(markdown).filter((table) => within(keysSection, table.line));

  test("reads the schema's keys, nested objects and lists of objects included", () => {
    expect(schemaKeys.get("chain.rpcUrl")).toBe("key");
    expect(schemaKeys.get("public.rateLimit.max")).toBe("key");
    expect(schemaKeys.get("networks[].displayName")).toBe("key");
    expect(schemaKeys.get("private.apiKeys[].permissions")).toBe("key");
    expect(schemaKeys.get("private.apiKeys")).toBe("section");
  });

  test("documents every key the config schema accepts, and no key it does not", () => {
    expect(keyTables.length, `${file}: no table under its "Keys" heading`).toBeGreaterThan(0);
    const documented = new Map<string, number>();
    const problems: string[] = [];
    for (const table of keyTables) {
      if (table.header[0] !== "Key") {
        problems.push(
          `${file}:${table.line}: a table under "Keys" whose first column is not "Key"`,
        );
        continue;
      }
      for (const row of table.rows) {
        const key = codeCell(row.cells[0]);
        if (key === undefined) {
          problems.push(`${file}:${row.line}: the first cell is not one key in backticks`);
        } else if (documented.has(key)) {
          problems.push(`${file}:${row.line}: ${key} is documented twice`);
        } else {
          documented.set(key, row.line);
        }
      }
    }
    for (const [key, kind] of schemaKeys) {
      if (kind === "key" && !documented.has(key)) {
        problems.push(`${file}: the config schema accepts ${key}, which is not documented`);
      }
    }
    for (const [key, line] of documented) {
      if (!schemaKeys.has(key)) {
        problems.push(
          `${file}:${line}: ${key} is documented, and the config schema has no such key`,
        );
      }
    }
    expect(problems).toEqual([]);
  });

  test("names each key's environment variable, as src/config/index.ts reads it", () => {
    const expected = new Map<string, string[]>([
      ["networks[].rpcUrl", [`${RPC_URL_ENV_PREFIX}<NAME>`]],
    ]);
    for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
      const key = path.join(".");
      expected.set(key, [...(expected.get(key) ?? []), variable]);
    }
    const problems: string[] = [];
    for (const table of keyTables) {
      const column = table.header.indexOf("Environment");
      if (column === -1) {
        problems.push(
          `${file}:${table.line}: a table under "Keys" without an "Environment" column`,
        );
        continue;
      }
      for (const row of table.rows) {
        const key = codeCell(row.cells[0]) ?? "";
        const named = [...(row.cells[column] ?? "").matchAll(/OXBTCPAY_[A-Z_]+(?:<NAME>)?/g)]
          .map((match) => match[0])
          .sort();
        const wanted = [...(expected.get(key) ?? [])].sort();
        if (named.join() !== wanted.join()) {
          problems.push(
            `${file}:${row.line}: ${key}'s environment is ${named.join(", ") || "none"}; the code reads ${wanted.join(", ") || "none"}`,
          );
        }
      }
    }
    const variables = section(markdown, "Environment variables");
    const listed = tables(markdown)
      .filter((table) => within(variables, table.line))
      .flatMap((table) => table.rows.map((row) => codeCell(row.cells[0])));
    for (const variable of [
      "OXBTCPAY_CONFIG",
      ...Object.keys(ENV_OVERRIDES),
      `${RPC_URL_ENV_PREFIX}<NAME>`,
    ]) {
      if (!listed.includes(variable)) {
        problems.push(`${file}: ${variable} is missing from "Environment variables"`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** The private port's methods, from the registry the daemon builds (postbacks on, as in the daemon). */
function rpcMethods(): string[] {
  const stub = { showNetworks: false, networks: ["ethereum"] } as unknown as Payments;
  return createMethodRegistry(
    builtinMethods({
      payments: stub,
      decimals: 8,
      maxWholeTokens: 20_999_984n,
      postbacks: { checkUrl: async () => ({ allowed: true }), resend: async () => [] },
      checkoutUrlOf: (id) => id,
    }),
  ).names();
}

/** The JSON-RPC error codes the private port answers with: src/rpc's named codes and every literal one. */
function rpcErrorCodes(): number[] {
  const codes = new Set<number>([SCAN_NOT_STARTED]);
  for (const value of Object.values(jsonrpc)) {
    if (typeof value === "number") codes.add(value);
    if (typeof value === "object" && value !== null && "code" in value) {
      codes.add((value as { code: number }).code);
    }
  }
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory()
        ? walk(join(dir, entry.name))
        : entry.name.endsWith(".ts")
          ? [join(dir, entry.name)]
          : [],
    );
  for (const path of walk("src/rpc")) {
    for (const match of read(path).matchAll(/-32\d{3}\b/g)) codes.add(Number(match[0]));
  }
  return [...codes].sort((a, b) => b - a);
}

describe("docs/api.md", () => {
  const file = "docs/api.md";
  const markdown = read(file);

  test("has a section for every JSON-RPC method of the registry, and for no other", () => {
    const methods = rpcMethods();
    expect(methods).toContain("start_payment");
    const documented = headings(markdown)
      .map((heading) => ({ name: codeHeading(heading.text), line: heading.line }))
      .filter((each): each is { name: string; line: number } =>
        /^[a-z][a-z0-9]*(_[a-z0-9]+)+$/.test(each.name ?? ""),
      );
    const names = documented.map((each) => each.name);
    const problems = [
      ...methods
        .filter((method) => !names.includes(method))
        .map((method) => `${file}: no section (a heading \`${method}\`) for the method ${method}`),
      ...documented
        .filter((each) => !methods.includes(each.name))
        .map((each) => `${file}:${each.line}: a section for ${each.name}, which is no method`),
    ];
    expect(problems).toEqual([]);
  });

  test("lists every error code the private port answers with, and no other", () => {
    const codes = rpcErrorCodes();
    expect(codes).toContain(-32700);
    const errorCodes = section(markdown, "Error codes");
    const documented = tables(markdown)
      .filter((table) => within(errorCodes, table.line))
      .flatMap((table) =>
        table.rows.map((row) => ({ code: codeCell(row.cells[0]), line: row.line })),
      );
    const problems: string[] = [];
    for (const code of codes) {
      if (!documented.some((each) => each.code === String(code))) {
        problems.push(`${file}: the code ${code} is missing from the table of "Error codes"`);
      }
    }
    for (const { code, line } of documented) {
      if (code === undefined || !codes.includes(Number(code))) {
        problems.push(`${file}:${line}: ${code ?? "a row"} is no error code of the private port`);
      }
    }
    // Nor does the prose name a code the port never answers with.
    markdown.split("\n").forEach((text, index) => {
      for (const match of text.matchAll(/-32\d{3}\b/g)) {
        if (!codes.includes(Number(match[0]))) {
          problems.push(`${file}:${index + 1}: ${match[0]} is no error code of the private port`);
        }
      }
    });
    expect(problems).toEqual([]);
  });
});

/** Every command of the program with its names from the top (["postbacks", "retry"]). */
function commandsOf(command: Command, path: string[] = []): { path: string[]; command: Command }[] {
  return command.commands
    .filter((sub) => sub.name() !== "help")
    .flatMap((sub) => {
      const subPath = [...path, sub.name()];
      return [{ path: subPath, command: sub }, ...commandsOf(sub, subPath)];
    });
}

/** What `0xbtcpay <path> --help` prints. */
function helpOf(command: Command): string {
  let text = "";
  command.configureOutput({
    writeOut: (chunk) => {
      text += chunk;
    },
    writeErr: (chunk) => {
      text += chunk;
    },
  });
  command.outputHelp();
  return text;
}

describe(`the CLI and ${COMMAND_DOCS}`, () => {
  const markdown = read(COMMAND_DOCS);
  const cli = section(markdown, "The CLI");
  const byAnchor = new Map(headings(markdown).map((heading) => [heading.anchor, heading]));

  test("every command's --help ends by naming its section, whose heading is the command", async () => {
    const program = await createProgram();
    const commands = commandsOf(program);
    expect(commands.map((each) => each.path.join(" "))).toContain("postbacks retry");
    expect(helpOf(program)).toContain(`Docs: README.md, and ${COMMAND_DOCS}`);
    const problems: string[] = [];
    for (const { path, command } of commands) {
      const name = path.join(" ");
      const docs = /\nDocs: (\S+)\n$/.exec(helpOf(command))?.[1];
      if (docs === undefined) {
        problems.push(`${name} --help does not end with a "Docs: <file>#<anchor>" line`);
        continue;
      }
      const [docFile, anchor = ""] = docs.split("#");
      const heading = byAnchor.get(anchor);
      if (docFile !== COMMAND_DOCS) {
        problems.push(`${name} --help names ${docFile}, not ${COMMAND_DOCS}`);
      } else if (!heading || !within(cli, heading.line)) {
        problems.push(
          `${name} --help names ${docs}: ${COMMAND_DOCS} has no such heading under "The CLI"`,
        );
      } else if (codeHeading(heading.text) !== name) {
        problems.push(`${name} --help names ${docs}, whose heading is ${heading.text}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test(`every command's section under "The CLI" is a command`, async () => {
    const names = commandsOf(await createProgram()).map((each) => each.path.join(" "));
    const problems = headings(markdown)
      .filter((heading) => within(cli, heading.line))
      .map((heading) => ({ name: codeHeading(heading.text), line: heading.line }))
      .filter((each) => each.name !== undefined && !names.includes(each.name))
      .map(
        (each) =>
          `${COMMAND_DOCS}:${each.line}: a section for \`${each.name}\`, which is no command`,
      );
    expect(cli, `${COMMAND_DOCS} has no heading "The CLI"`).toBeDefined();
    expect(problems).toEqual([]);
  });
});
