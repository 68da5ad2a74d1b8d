import { Command } from "commander";
import { loadConfig } from "../../config/index.ts";
import { startDaemon } from "../../daemon.ts";
import { createLogger } from "../../internal/logger.ts";
import { exitOnError, onSignals } from "../run.ts";

export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "Run the daemon: private JSON-RPC port, public status port, chain watcher, postbacks.",
    )
    .option("-c, --config <file>", "JSON config file (default: $OXBTCPAY_CONFIG)")
    .addHelpText(
      "after",
      `
Secrets may come from the environment instead of the file:
  OXBTCPAY_XPUB             wallet.xpub
  OXBTCPAY_RPC_URL          chain.rpcUrl
  OXBTCPAY_RPC_URL_<NAME>   networks[i].rpcUrl of the network named <name> (OXBTCPAY_RPC_URL_POLYGON)
  OXBTCPAY_POSTBACK_SECRET  postbacks.secret
  OXBTCPAY_POSTBACK_PREVIOUS_SECRETS  postbacks.previousSecrets (space- or comma-separated)
  OXBTCPAY_DATABASE_URL     database.url: PostgreSQL, shared by several replicas (then no database.path)

Example:
  0xbtcpay serve --config config/production.json`,
    )
    .action(async (options: { config?: string }) => {
      const path = options.config ?? process.env.OXBTCPAY_CONFIG;
      if (!path)
        exitOnError(new Error("no config file: pass --config FILE or set OXBTCPAY_CONFIG"));
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig({ path, env: process.env });
      } catch (error) {
        exitOnError(error);
      }
      const logger = createLogger({ level: config.log.level });
      try {
        const daemon = await startDaemon({ config, logger });
        onSignals((signal) => {
          logger.info({ signal }, "signal received: stopping (send it again to force)");
          return daemon.stop();
        });
        daemon.done.then(
          () => process.exit(0),
          () => process.exit(1),
        );
      } catch (error) {
        logger.fatal({ err: error }, "failed to start");
        exitOnError(error);
      }
    });
}
