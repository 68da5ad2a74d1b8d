/**
 * The `0xbtcpay` command line. Each command lives in ./commands/.
 *
 * Only the command being run is imported: `0xbtcpay derive` need not load
 * the daemon, its HTTP servers and viem (a second of CPU on a small machine).
 * Help, a version request or an unknown command load them all, so the
 * listing and commander's suggestions stay complete.
 */
import { Command } from "commander";

const COMMANDS: Record<string, () => Promise<Command>> = {
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

const program = new Command()
  .name("0xbtcpay")
  .description(
    "Self-hosted, watch-only 0xBitcoin (0xBTC) payment gateway, wire-compatible with 0xBTCpay.",
  )
  .version("0.1.0")
  .showHelpAfterError();

const named = process.argv[2];
const load =
  named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
for (const name of load) program.addCommand(await (COMMANDS[name] as () => Promise<Command>)());

await program.parseAsync(process.argv);
