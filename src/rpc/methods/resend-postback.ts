import { InvalidParamsError } from "../jsonrpc.ts";
import type { RpcMethod } from "../registry.ts";

/**
 * `resend_postback` {id}: re-queues a postback event (event id) or every
 * event of a payment (payment id), delivered or failed, under the same
 * webhook-id. Result: `{requeued: [event ids]}`.
 */
export function resendPostbackMethod({
  resend,
}: {
  resend(id: string): Promise<string[]>;
}): RpcMethod {
  return {
    name: "resend_postback",
    permission: "postbacks:resend",
    async handler(p, { log }) {
      const id = p.id;
      if (typeof id !== "string" || id === "") throw new InvalidParamsError("missing id");
      const requeued = await resend(id);
      if (requeued.length === 0) throw new InvalidParamsError("unknown id");
      log.info({ id, requeued }, "resend_postback: events re-queued");
      return { requeued };
    },
  };
}
