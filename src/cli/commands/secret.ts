import { Command } from "commander";
import { generateSecret } from "../../postbacks/sign.ts";

export function secretCommand(): Command {
  return new Command("secret")
    .description("Print a new postback signing secret (whsec_ + base64 of 32 random bytes).")
    .addHelpText(
      "after",
      `
Give it to the daemon as OXBTCPAY_POSTBACK_SECRET (or postbacks.secret) and
to the shop, which verifies the webhook-signature header with it.

Example:
  0xbtcpay secret > /etc/0xbtcpay/postback-secret`,
    )
    .action(() => {
      process.stdout.write(`${generateSecret()}\n`);
    });
}
