/**
 * One process of the bench's public_flood: holds idle connections (connect,
 * send nothing) against the daemon's public port, one per slot, each slot
 * from its own loopback source address. Whatever the daemon closes (a
 * refusal, the headers timeout) is opened again after `reconnectMs`, so the
 * pressure lasts as long as the flood. Connects are paced (`inFlight` at
 * once) so the listen backlog does not overflow into SYN retries.
 *
 * The spec comes in $BENCH_FLOOD; "stats" messages are answered with the
 * counts so far; "stop" closes everything and exits.
 */
import { connect, type Socket } from "node:net";

export type FloodSpec = {
  host: string;
  port: number;
  /** One source address per slot (connection held). */
  sources: string[];
  reconnectMs: number;
  inFlight: number;
};

export type FloodStats = {
  slots: number;
  /** Slots that have tried to connect at least once. */
  started: number;
  attempts: number;
  /** Connected and nothing received yet (accepted, or still in the daemon's accept queue). */
  connected: number;
  /** Answers received, by status: 503 (total cap), 429 (per-IP cap), 408 (headers timeout). */
  refused503: number;
  refused429: number;
  timedOut408: number;
  /** Other first answers, and connections closed with no answer. */
  otherAnswers: number;
  closedSilently: number;
  /** Socket errors, by code. */
  errors: Record<string, number>;
};

export type FloodChildMessage =
  | { type: "ready" }
  | { type: "stats"; stats: FloodStats }
  | { type: "error"; message: string };

const spec = JSON.parse(process.env.BENCH_FLOOD ?? "null") as FloodSpec;
const stats: FloodStats = {
  slots: spec.sources.length,
  started: 0,
  attempts: 0,
  connected: 0,
  refused503: 0,
  refused429: 0,
  timedOut408: 0,
  otherAnswers: 0,
  closedSilently: 0,
  errors: {},
};
const open = new Set<Socket>();
const queue: number[] = spec.sources.map((_, slot) => slot);
let connecting = 0;
let stopping = false;

function classify(first: string): void {
  const status = first.slice(9, 12);
  if (status === "503") stats.refused503++;
  else if (status === "429") stats.refused429++;
  else if (status === "408") stats.timedOut408++;
  else stats.otherAnswers++;
}

function openSlot(slot: number, first: boolean): void {
  if (first) stats.started++;
  stats.attempts++;
  connecting++;
  let connected = false;
  let answered = false;
  const socket = connect({ host: spec.host, port: spec.port, localAddress: spec.sources[slot] });
  open.add(socket);
  socket.setEncoding("latin1");
  socket.once("connect", () => {
    connected = true;
    connecting--;
    stats.connected++;
    pump();
  });
  socket.once("data", (chunk: string) => {
    answered = true;
    stats.connected--;
    classify(chunk);
  });
  // Read (and drop) whatever else comes, until the daemon closes.
  socket.on("data", () => {});
  socket.on("error", (error: NodeJS.ErrnoException) => {
    const code = error.code ?? "unknown";
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
  });
  socket.once("close", () => {
    open.delete(socket);
    if (!connected) {
      connecting--;
      pump();
    } else if (!answered) {
      stats.connected--;
      stats.closedSilently++;
    }
    if (stopping) return;
    setTimeout(() => {
      queue.push(slot);
      pump();
    }, spec.reconnectMs);
  });
}

let firstRound = spec.sources.length;
function pump(): void {
  while (!stopping && connecting < spec.inFlight && queue.length > 0) {
    const slot = queue.shift() as number;
    openSlot(slot, firstRound-- > 0);
  }
}

function send(message: FloodChildMessage): void {
  process.send?.(message);
}

process.on("message", (message: { type?: string }) => {
  if (message.type === "stats") send({ type: "stats", stats });
  if (message.type === "stop") {
    stopping = true;
    for (const socket of open) socket.destroy();
    process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
pump();
