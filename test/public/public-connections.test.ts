/**
 * The public port's connection caps and timeouts: the default cap rule as a
 * pure function, the caps over real sockets from several loopback addresses
 * (127.0.0.x), and the daemon held at its cap while the private port and the
 * watcher keep working. No timing is asserted: tests wait for events.
 */

import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { Daemon } from "../../src/daemon.ts";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import { createLogger, type Logger } from "../../src/internal/logger.ts";
import {
  type ConnectionLimits,
  connectionCap,
  createConnectionLimits,
  defaultMaxConnections,
  parseDescriptorLimit,
  readDescriptorLimit,
} from "../../src/public/connections.ts";
import {
  rpc,
  silentLogger,
  startPayment,
  startTestChain,
  startTestDaemon,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { setupApps } from "../helpers/private-app.ts";

/** The answer over the total cap, byte for byte; Retry-After is keepAliveTimeoutMs in seconds. */
const busy = (retryAfter: number) =>
  "HTTP/1.1 503 Service Unavailable\r\n" +
  `Retry-After: ${retryAfter}\r\n` +
  "Connection: close\r\n" +
  "Content-Type: application/json\r\n" +
  "Cache-Control: no-store\r\n" +
  "Access-Control-Allow-Origin: *\r\n" +
  "X-Content-Type-Options: nosniff\r\n" +
  "Content-Length: 23\r\n" +
  "\r\n" +
  '{"error":"server busy"}';
/** The answer over the per-IP cap. */
const tooMany = (retryAfter: number) =>
  "HTTP/1.1 429 Too Many Requests\r\n" +
  `Retry-After: ${retryAfter}\r\n` +
  "Connection: close\r\n" +
  "Content-Type: application/json\r\n" +
  "Cache-Control: no-store\r\n" +
  "Access-Control-Allow-Origin: *\r\n" +
  "X-Content-Type-Options: nosniff\r\n" +
  "Content-Length: 32\r\n" +
  "\r\n" +
  '{"error":"too many connections"}';
/** With keepAliveTimeoutMs at its default, 5000. */
const BUSY = busy(5);
const TOO_MANY = tooMany(5);
/** What node:http sends a connection that sent no complete headers in time. */
const HEADERS_TIMEOUT = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";

const PROC_LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                40000                files
Max locked memory         8388608              8388608              bytes
`;

describe("the default cap", () => {
  test.each([
    [1024, 512],
    [4096, 2048],
    [20_000, 10_000],
    [65_536, 32_768],
    [1_048_576, 524_288],
    // Below 1024 the reserve decides: the limit minus 512.
    [800, 288],
    [600, 88],
    // Too low to leave the reserve: the smallest cap.
    [512, 16],
    [256, 16],
  ])("a descriptor limit of %i gives a cap of %i", (limit, cap) => {
    expect(defaultMaxConnections(limit)).toBe(cap);
  });

  test("the soft limit is read from /proc/self/limits, 1024 when it cannot be", async () => {
    expect(parseDescriptorLimit(PROC_LIMITS)).toBe(20_000);
    expect(parseDescriptorLimit(PROC_LIMITS.replace("20000    ", "unlimited"))).toBeUndefined();
    expect(parseDescriptorLimit("Max cpu time unlimited unlimited seconds\n")).toBeUndefined();
    expect(readDescriptorLimit(() => PROC_LIMITS)).toBe(20_000);
    expect(
      readDescriptorLimit(() => {
        throw new Error("ENOENT: no such file or directory, open '/proc/self/limits'");
      }),
    ).toBe(1024);
    expect(readDescriptorLimit(() => "")).toBe(1024);
  });

  test("a configured cap wins, and is flagged when it leaves less than the reserve", async () => {
    expect(connectionCap({ configured: undefined, descriptorLimit: 20_000 })).toEqual({
      maxConnections: 10_000,
      crowded: false,
    });
    expect(connectionCap({ configured: 19_488, descriptorLimit: 20_000 })).toEqual({
      maxConnections: 19_488,
      crowded: false,
    });
    expect(connectionCap({ configured: 19_489, descriptorLimit: 20_000 })).toEqual({
      maxConnections: 19_489,
      crowded: true,
    });
    expect(connectionCap({ configured: undefined, descriptorLimit: 256 })).toEqual({
      maxConnections: 16,
      crowded: true,
    });
  });
});

/** A raw client connection from a loopback address of our choice. */
type Client = {
  socket: Socket;
  received(): string;
  isClosed(): boolean;
  /** Everything received, once the connection is closed. */
  closed: Promise<string>;
};

const sockets: Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

/** Connects from `from` to 127.0.0.1:`port`, then sends `send` (nothing: an idle connection). */
function connectFrom(port: number, from: string, send?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress: from });
    sockets.push(socket);
    let text = "";
    let isClosed = false;
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      text += chunk;
    });
    const closed = new Promise<string>((done) =>
      socket.once("close", () => {
        isClosed = true;
        done(text);
      }),
    );
    socket.once("error", reject);
    socket.once("connect", () => {
      if (send !== undefined) socket.write(send);
      resolve({ socket, received: () => text, isClosed: () => isClosed, closed });
    });
  });
}

/** Closes a client connection and waits until it is closed on this side. */
async function hangUp(client: Client): Promise<void> {
  client.socket.end();
  await client.closed;
}

function captureLogs(): { lines: () => Array<Record<string, unknown>>; logger: Logger } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return {
    lines: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    logger: createLogger({ level: "info", destination }),
  };
}

/** The public listener behind the connection caps, on 127.0.0.1 port 0. */
async function servePublic({
  maxConnections = 40,
  maxConnectionsPerIp = 10,
  headersTimeoutMs = 120_000,
  trustProxy,
  logger = silentLogger,
}: {
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  headersTimeoutMs?: number;
  trustProxy?: string[];
  logger?: Logger;
} = {}): Promise<{
  port: number;
  limits: ConnectionLimits;
  requests: () => number;
  statusPath: string;
}> {
  const apps = await setupApps();
  const { id } = await apps.payments.create({ amount: 29_000_000n, data: null, postbackUrl: null });
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    apps.publicListener(req, res);
  });
  const limits = createConnectionLimits({
    server,
    settings: { maxConnections, maxConnectionsPerIp, headersTimeoutMs, keepAliveTimeoutMs: 5_000 },
    trustProxy: trustProxy ? createAllowlist({ allow: trustProxy, loopback: false }) : undefined,
    logger,
    descriptorLimit: 20_000,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        limits.close();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets.splice(0)) socket.destroy();
      }),
  );
  const { port } = server.address() as { port: number };
  return { port, limits, requests: () => requests, statusPath: `/${id}/status.json` };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Opens `count` idle connections from `from` and waits until the server counts them. */
async function holdIdle(
  port: number,
  limits: ConnectionLimits,
  from: string,
  count: number,
): Promise<Client[]> {
  const clients: Client[] = [];
  for (let i = 0; i < count; i++) {
    const before = limits.open();
    clients.push(await connectFrom(port, from));
    await waitFor(() => limits.open() === before + 1, { what: `connection ${i + 1} from ${from}` });
  }
  return clients;
}

const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

describe("connection caps over real sockets", () => {
  test("the 11th connection from one address gets 429 and is closed; other addresses are still served", async () => {
    const { port, limits, statusPath } = await servePublic();
    await holdIdle(port, limits, "127.0.0.2", 10);
    expect(limits.openFrom("127.0.0.2")).toBe(10);

    const eleventh = await connectFrom(port, "127.0.0.2");
    expect(await eleventh.closed).toBe(TOO_MANY);
    expect(limits.refused()).toEqual({ total: 0, perIp: 1 });
    expect(limits.open()).toBe(10);

    const other = await connectFrom(port, "127.0.0.3", request(statusPath));
    await waitFor(() => other.received().includes('"status":"waiting"'), { what: "status.json" });
    expect(other.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(other.isClosed()).toBe(false);
    expect(limits.openFrom("127.0.0.3")).toBe(1);
  });

  test("the 41st connection gets 503; closing some lets new ones in; one warning per episode", async () => {
    const logs = captureLogs();
    const { port, limits, statusPath } = await servePublic({ logger: logs.logger });
    const held: Client[] = [];
    for (const from of ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]) {
      held.push(...(await holdIdle(port, limits, from, 10)));
    }
    expect(limits.open()).toBe(40);

    // Over the total cap: 503, whoever asks; a client over its own cap: 429.
    expect(await (await connectFrom(port, "127.0.0.6")).closed).toBe(BUSY);
    expect(await (await connectFrom(port, "127.0.0.7", request(statusPath))).closed).toBe(BUSY);
    expect(await (await connectFrom(port, "127.0.0.2")).closed).toBe(TOO_MANY);
    expect(limits.refused()).toEqual({ total: 2, perIp: 1 });

    // One slot free: one more gets in; still in the episode (39 is not below 90 % of 40).
    await hangUp(held.pop() as Client);
    await waitFor(() => limits.open() === 39, { what: "39 open" });
    await holdIdle(port, limits, "127.0.0.6", 1);
    expect(limits.open()).toBe(40);
    expect(await (await connectFrom(port, "127.0.0.8")).closed).toBe(BUSY);

    // Back below 36 (90 %): the episode ends; new connections are accepted again.
    for (const client of held.splice(-5)) await hangUp(client);
    await waitFor(() => limits.open() === 35, { what: "35 open" });
    await holdIdle(port, limits, "127.0.0.9", 5);
    expect(limits.open()).toBe(40);
    // A new episode.
    expect(await (await connectFrom(port, "127.0.0.10")).closed).toBe(BUSY);
    expect(limits.refused()).toEqual({ total: 4, perIp: 1 });

    const lines = logs.lines().map(({ time: _time, service: _service, ...fields }) => fields);
    expect(lines).toEqual([
      {
        level: 30,
        module: "public",
        msg: "public port: connection caps",
        max_connections: 40,
        max_connections_per_ip: 10,
        descriptor_limit: 20_000,
      },
      {
        level: 40,
        module: "public",
        msg: "public port: connection cap reached; refusing new connections with 503",
        open: 40,
        max_connections: 40,
        clients: 4,
      },
      {
        level: 40,
        module: "public",
        msg: "public port: a client reached the per-IP connection cap; refusing its new connections with 429",
        client: "127.0.0.2",
        open_from_client: 10,
        max_connections_per_ip: 10,
        open: 40,
        max_connections: 40,
      },
      {
        level: 30,
        module: "public",
        msg: "public port: back under the connection cap",
        open: 35,
        max_connections: 40,
        refused: 3,
      },
      {
        level: 40,
        module: "public",
        msg: "public port: connection cap reached; refusing new connections with 503",
        open: 40,
        max_connections: 40,
        clients: 6,
      },
    ]);
  });

  test("a refused connection's request is never read: the same answer whatever it sends", async () => {
    const { port, limits, requests, statusPath } = await servePublic({ maxConnections: 16 });
    await holdIdle(port, limits, "127.0.0.2", 8);
    await holdIdle(port, limits, "127.0.0.3", 8);
    expect(requests()).toBe(0);
    for (const send of [request(statusPath), "\x16\x03\x01garbage, not HTTP\r\n\r\n", undefined]) {
      expect(await (await connectFrom(port, "127.0.0.4", send)).closed).toBe(BUSY);
    }
    expect(requests()).toBe(0);
    expect(limits.refused()).toEqual({ total: 3, perIp: 0 });
  });

  test("a trusted proxy is capped in total only, not per address", async () => {
    const { port, limits } = await servePublic({
      maxConnections: 16,
      maxConnectionsPerIp: 4,
      trustProxy: ["127.0.0.1"],
    });
    await holdIdle(port, limits, "127.0.0.1", 16);
    expect(limits.openFrom("127.0.0.1")).toBe(0);
    expect(await (await connectFrom(port, "127.0.0.1")).closed).toBe(BUSY);
    expect(limits.refused()).toEqual({ total: 1, perIp: 0 });
  });

  test("a cap that leaves the rest of the daemon too few descriptors is warned about at start", async () => {
    const logs = captureLogs();
    const limits = createConnectionLimits({
      server: createServer(),
      settings: {
        maxConnections: 900,
        maxConnectionsPerIp: 256,
        headersTimeoutMs: 10_000,
        keepAliveTimeoutMs: 5_000,
      },
      trustProxy: undefined,
      logger: logs.logger,
      descriptorLimit: 1024,
    });
    expect(limits.maxConnections).toBe(900);
    expect(
      logs.lines().map(({ level, msg, ...fields }) => ({
        level,
        msg,
        max: fields.max_connections,
        limit: fields.descriptor_limit,
      })),
    ).toEqual([
      { level: 30, msg: "public port: connection caps", max: 900, limit: 1024 },
      {
        level: 40,
        msg: "public.maxConnections leaves fewer than 512 file descriptors to the rest of the daemon: raise the limit (ulimit -n, systemd LimitNOFILE=) or lower public.maxConnections",
        max: 900,
        limit: 1024,
      },
    ]);
  });

  test("a connection that sends nothing is closed after headersTimeoutMs (408)", async () => {
    const { port, limits } = await servePublic({ headersTimeoutMs: 1_000 });
    const idle = await connectFrom(port, "127.0.0.2");
    // Half a request line is no better than nothing.
    const slow = await connectFrom(port, "127.0.0.3", "GET / HTTP/1.1\r\nHost: 127.0");
    expect(await idle.closed).toBe(HEADERS_TIMEOUT);
    expect(await slow.closed).toBe(HEADERS_TIMEOUT);
    await waitFor(() => limits.open() === 0, { what: "no connection open" });
  });
});

describe("the daemon under a full public port", () => {
  const PAYER = ANVIL_ACCOUNTS[1];
  let chain: TestChain;
  let daemon: Daemon;
  let port: number;
  const dir = tempDir();

  beforeAll(async () => {
    chain = await startTestChain();
    await chain.mint(chain.token, PAYER, tokens(1_000));
    daemon = await startTestDaemon(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      join(dir.path, "caps.sqlite"),
      {
        public: {
          maxConnections: 40,
          maxConnectionsPerIp: 10,
          // The default trusts loopback as a reverse proxy; here 127.0.0.x are shoppers.
          trustProxy: [],
          headersTimeoutMs: 1_000,
          keepAliveTimeoutMs: 1_000,
        },
      },
    );
    port = Number(new URL(daemon.publicUrl).port);
  });
  afterAll(async () => {
    await daemon?.stop();
    await chain?.stop();
    dir.cleanup();
  });

  /** Opens a live stream of payment `id` and waits for its first status. */
  async function stream(id: string, from: string): Promise<Client> {
    const client = await connectFrom(port, from, request(`/${id}/events`));
    await waitFor(() => client.received().includes("\ndata: {"), { what: `stream from ${from}` });
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    return client;
  }

  async function pay(to: `0x${string}`, value: bigint): Promise<void> {
    await chain.submitTransfer({ token: chain.token, from: PAYER, to, value });
    await chain.mine(1);
  }

  test("live streams outlive the headers, request and keep-alive timeouts", async () => {
    const payment = await startPayment(daemon.privateUrl, { amount: "0.29" });
    const live = await stream(payment.id, "127.0.0.2");
    // Witnesses opened after the stream: each is closed by one of the timeouts.
    const idle = await connectFrom(port, "127.0.0.3");
    expect(await idle.closed).toBe(HEADERS_TIMEOUT);
    const keptAlive = await connectFrom(port, "127.0.0.3", request(`/${payment.id}/status.json`));
    expect(await keptAlive.closed).toMatch(/^HTTP\/1\.1 200 OK\r\n(.|\r\n)*"status":"waiting"/);
    expect(live.isClosed()).toBe(false);
    await pay(payment.address, tokens(1));
    await waitFor(() => live.received().includes('"status":"seen"'), {
      what: "seen on the stream",
    });
    expect(live.isClosed()).toBe(false);
    await hangUp(live);
  });

  test("held at its cap by live streams, the public port refuses more while the private port and the watcher work", async () => {
    await waitFor(() => daemon.publicConnections.open() === 0, { what: "the last test's gone" });
    const refusedBefore = daemon.publicConnections.refused();
    const watched = await startPayment(daemon.privateUrl, { amount: "0.29" });
    const streams: Client[] = [];
    for (const from of ["127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"]) {
      for (let i = 0; i < 10; i++) streams.push(await stream(watched.id, from));
    }
    // keepAliveTimeoutMs 1000: come back in a second.
    expect(await (await connectFrom(port, "127.0.0.16")).closed).toBe(busy(1));
    expect(await (await connectFrom(port, "127.0.0.12")).closed).toBe(tooMany(1));
    expect(daemon.publicConnections.open()).toBe(40);
    expect(daemon.publicConnections.openFrom("127.0.0.12")).toBe(10);
    expect(daemon.publicConnections.refused()).toEqual({
      total: refusedBefore.total + 1,
      perIp: refusedBefore.perIp + 1,
    });

    // The private port: a new payment while the public port is full.
    const during = await startPayment(daemon.privateUrl, { amount: "1.5" });
    expect(during.amount).toBe("1.5");
    // The watcher: both payments detected, pushed to every stream.
    await pay(watched.address, tokens(1));
    await pay(during.address, tokens(2));
    for (const client of streams) {
      await waitFor(() => client.received().includes('"status":"seen"'), { what: "seen pushed" });
    }
    const got = await waitFor(
      async () => {
        const { json } = await rpc(daemon.privateUrl, {
          jsonrpc: "2.0",
          id: 1,
          method: "get_payment",
          params: { id: during.id },
        });
        return json.result?.status === "seen" ? json.result : undefined;
      },
      { what: "the payment made during the flood seen" },
    );
    expect(got).toMatchObject({ status: "seen", paid_amount: "2", amount: "1.5" });
    expect(streams.every((client) => !client.isClosed())).toBe(true);

    // Shoppers leave: the port serves again.
    for (const client of streams.splice(0, 5)) await hangUp(client);
    const served = await waitFor(
      async () => {
        const client = await connectFrom(port, "127.0.0.17", request(`/${during.id}/status.json`));
        // Refused: closed after the answer; served: kept alive after it.
        const text = await waitFor(
          () =>
            (client.isClosed() || client.received().includes('"status":"seen"')) &&
            client.received(),
        );
        return text.startsWith("HTTP/1.1 200 OK\r\n") ? text : undefined;
      },
      { what: "status.json served again" },
    );
    expect(served).toContain('"paid_amount":"2"');
  });
});
