/**
 * Where the time goes in a `.cpuprofile` written by `npm run bench --
 * --profile DIR`: self time by function and by package, and the inclusive
 * time of the frames whose name matches a pattern.
 *
 *   node --import tsx test/bench/profile-summary.ts DIR/start-payment-daemon.cpuprofile [pattern…]
 */
import { readFileSync } from "node:fs";

type CallFrame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };

const [file, ...patterns] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: profile-summary.ts FILE.cpuprofile [function-name-pattern…]\n");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes)
  for (const child of node.children ?? []) parent.set(child, node.id);

const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

/** node_modules package, our source folder, node internals, or a V8 pseudo-frame. */
function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return `(${functionName.replace(/[()]/g, "") || "native"})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  const ours = /\/(src|test)\/(.+?)\/?[^/]*$/.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return url;
}

function label(frame: CallFrame): string {
  const where = frame.url
    ? `${frame.url.replace(/^.*\/(node_modules|src|test)\//, "$1/")}:${frame.lineNumber + 1}`
    : "";
  return `${frame.functionName || "(anonymous)"} ${where}`.trim();
}

const pct = (us: number) => `${((us / totalUs) * 100).toFixed(1).padStart(5)}%`;

function top(map: Map<string, number>, n: number, title: string) {
  process.stdout.write(`\n${title}\n`);
  for (const [key, us] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}\n`);
  }
}

const selfByFunction = new Map<string, number>();
const selfByArea = new Map<string, number>();
for (const [id, us] of selfUs) {
  const frame = (byId.get(id) as ProfileNode).callFrame;
  selfByFunction.set(label(frame), (selfByFunction.get(label(frame)) ?? 0) + us);
  selfByArea.set(area(frame), (selfByArea.get(area(frame)) ?? 0) + us);
}
process.stdout.write(`${file}: ${(totalUs / 1000).toFixed(0)} ms sampled\n`);
top(selfByArea, 20, "self time by package / folder");
top(selfByFunction, 30, "self time by function");

if (patterns.length > 0) {
  // Inclusive time: a sample counts once for each pattern that matches any frame on its stack.
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const hit = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame;
      for (const pattern of patterns) {
        if (new RegExp(pattern).test(`${frame.functionName} ${frame.url}`)) hit.add(pattern);
      }
    }
    for (const pattern of hit) inclusive.set(pattern, (inclusive.get(pattern) ?? 0) + us);
  }
  top(inclusive, patterns.length, "inclusive time of frames matching");
}
