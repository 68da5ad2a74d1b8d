/**
 * `npm run bench`: placeholder until the benchmark issue lands.
 */
process.stdout.write(`${JSON.stringify({ note: "benchmarks come in a later issue" })}\n`);
