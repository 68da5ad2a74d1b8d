// Worker bootstrap for the TypeScript sources (npm start, the tests): loads
// checkpoint-worker.ts through tsx, a devDependency. The compiled daemon (dist/) starts
// checkpoint-worker.js directly and never loads this file (internal/background.ts).
import { register } from "tsx/esm/api";

register();
await import("./checkpoint-worker.ts");
