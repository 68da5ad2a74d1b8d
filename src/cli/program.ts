/**
 * The `0xbtcpay` program: every command (one per file in ./commands/), and
 * where docs/ documents each one, named at the end of its `--help`.
 *
 * Only the command being run is imported: `0xbtcpay derive` need not load
 * the daemon, its HTTP servers and viem (a second of CPU on a small machine).
 * Help, a version request or an unknown command load them all, so the
 * listing and commander's suggestions stay complete.
 */
import { Command } from "commander";

export const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./commands/serve.ts")).serveCommand(),
  dev: async () => (await import("./commands/dev.ts")).devCommand(),
  derive: async () => (await import("./commands/derive.ts")).deriveCommand(),
  secret: async () => (await import("./commands/secret.ts")).secretCommand(),
  postbacks: async () => (await import("./commands/postbacks.ts")).postbacksCommand(),
  apikey: async () => (await import("./commands/apikey.ts")).apikeyCommand(),
  status: async () => (await import("./commands/status.ts")).statusCommand(),
  doctor: async () => (await import("./commands/doctor.ts")).doctorCommand(),
  backup: async () => (await import("./commands/backup.ts")).backupCommand(),
  restore: async () => (await import("./commands/restore.ts")).restoreCommand(),
  rescan: async () => (await import("./commands/rescan.ts")).rescanCommand(),
  "migrate-db": async () => (await import("./commands/migrate-db.ts")).migrateDbCommand(),
};

/**
 * The file that documents every command: one section each, whose heading is
 * the command in backticks (`` ### `postbacks retry` ``).
 * test/project/docs.test.ts checks both directions.
 */
export const COMMAND_DOCS = "docs/operations.md";

/** Where the command at `path` (its names from the top: ["postbacks", "retry"]) is documented. */
export function docsOf(path: readonly string[]): string {
  // NOTE: GitHub's anchor of `postbacks retry` is "postbacks-retry": command
  // names are lowercase letters and dashes, which the anchor keeps.
  return `${COMMAND_DOCS}#${path.join("-")}`;
}

/** Ends the help of `command`, and of each of its subcommands, with its "Docs: …" line. */
function addDocs(command: Command, path: readonly string[]): void {
  command.addHelpText("after", `\nDocs: ${docsOf(path)}`);
  for (const sub of command.commands) addDocs(sub, [...path, sub.name()]);
}

/** The program with the command named `only` (when it is one), else with every command. */
export async function createProgram(only?: string): Promise<Command> {
  const program = new Command()
    .name("0xbtcpay")
    .description(
      "Self-hosted, watch-only 0xBitcoin (0xBTC) payment gateway, wire-compatible with 0xBTCpay.",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .addHelpText("after", `\nDocs: README.md, and ${COMMAND_DOCS} for every command`);
  const names =
    only !== undefined && Object.hasOwn(COMMANDS, only) ? [only] : Object.keys(COMMANDS);
  for (const name of names) {
    const command = await (COMMANDS[name] as () => Promise<Command>)();
    addDocs(command, [name]);
    program.addCommand(command);
  }
  return program;
}
