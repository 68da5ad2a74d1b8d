// Worker bootstrap: loads the TypeScript worker through tsx, as bin/0xbtcpay does.
import { register } from "tsx/esm/api";

register();
await import("./checkpoint-worker.ts");
