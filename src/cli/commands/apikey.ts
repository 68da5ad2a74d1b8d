import { Command, InvalidArgumentError, Option } from "commander";
import {
  generateApiKey,
  hashApiKey,
  isPermission,
  PERMISSIONS,
  type Permission,
} from "../../rpc/api-keys.ts";

function permissionList(value: string): Permission[] {
  const permissions = value
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const unknown = permissions.filter((p) => !isPermission(p));
  if (permissions.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(
      `expected a comma-separated list of: ${PERMISSIONS.join(", ")}${unknown.length > 0 ? ` (unknown: ${unknown.join(", ")})` : ""}`,
    );
  }
  return [...new Set(permissions as Permission[])];
}

function keyName(value: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(value)) {
    throw new InvalidArgumentError("expected 1 to 64 letters, digits, dots, dashes or underscores");
  }
  return value;
}

/** `0xbtcpay apikey create`: a new private-port API key, printed once, and its config entry. */
export function apikeyCommand(): Command {
  const create = new Command("create")
    .description(
      "Generate an API key for the private port. Prints the key once and the private.apiKeys entry (its hash) to paste into the config.",
    )
    .requiredOption("--name <name>", "a name for the key (shown in logs), e.g. the shop", keyName)
    .requiredOption(
      "--permissions <list>",
      `comma-separated: ${PERMISSIONS.join(", ")}`,
      permissionList,
    )
    .addOption(
      new Option("--hash <algorithm>", "how the config stores the key")
        .choices(["sha256", "scrypt"])
        .default("sha256"),
    )
    .addHelpText(
      "after",
      `
The daemon never stores the key, only its hash: keep the key in the shop's
secrets and send it as "Authorization: Bearer <key>".

Example:
  0xbtcpay apikey create --name shop --permissions payments:create,payments:read`,
    )
    .action((options: { name: string; permissions: Permission[]; hash: "sha256" | "scrypt" }) => {
      const key = generateApiKey();
      const entry = {
        name: options.name,
        hash: hashApiKey(key, options.hash),
        permissions: options.permissions,
      };
      process.stdout.write(
        [
          "API key (shown only now; store it in the shop's secrets):",
          "",
          `  ${key}`,
          "",
          'Add this entry to "private.apiKeys" in the daemon\'s config file, then restart it:',
          "",
          `  ${JSON.stringify(entry)}`,
          "",
        ].join("\n"),
      );
    });
  return new Command("apikey")
    .description("Manage API keys for the private port.")
    .addCommand(create);
}
