/**
 * The `0xbtcpay` command line. Each command lives in ./commands/.
 */
import { Command } from "commander";
import { apikeyCommand } from "./commands/apikey.ts";
import { backupCommand } from "./commands/backup.ts";
import { deriveCommand } from "./commands/derive.ts";
import { devCommand } from "./commands/dev.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { postbacksCommand } from "./commands/postbacks.ts";
import { rescanCommand } from "./commands/rescan.ts";
import { restoreCommand } from "./commands/restore.ts";
import { secretCommand } from "./commands/secret.ts";
import { serveCommand } from "./commands/serve.ts";
import { statusCommand } from "./commands/status.ts";

const program = new Command()
  .name("0xbtcpay")
  .description(
    "Self-hosted, watch-only 0xBitcoin (0xBTC) payment gateway, wire-compatible with 0xBTCpay.",
  )
  .version("0.1.0")
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(devCommand());
program.addCommand(deriveCommand());
program.addCommand(secretCommand());
program.addCommand(postbacksCommand());
program.addCommand(apikeyCommand());
program.addCommand(statusCommand());
program.addCommand(doctorCommand());
program.addCommand(backupCommand());
program.addCommand(restoreCommand());
program.addCommand(rescanCommand());

await program.parseAsync(process.argv);
