/** The `0xbtcpay` command line: ./program.ts builds it, with only the command being run. */
import { createProgram } from "./program.ts";

const program = await createProgram(process.argv[2]);
await program.parseAsync(process.argv);
