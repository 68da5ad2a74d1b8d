/**
 * config/0xbtcpay.service: systemd's own parser accepts every line of it
 * (`systemd-analyze verify`, from Debian's systemd package, which .ci/run
 * installs when missing), and it keeps the hardening docs/production.md promises.
 */
import { execFile } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "vitest";
import { tempDir } from "../helpers/index.ts";

const UNIT = "config/0xbtcpay.service";
const run = promisify(execFile);
const dir = tempDir();
afterAll(() => dir.cleanup());

/** `systemd-analyze verify` of a unit file: its exit code and what it printed. */
async function verify(path: string) {
  try {
    // NOTE: systemd's tools may log to the journal rather than to a stderr
    // that is no terminal; SYSTEMD_LOG_TARGET=console keeps them on stderr.
    const { stdout, stderr } = await run("systemd-analyze", ["verify", path], {
      timeout: 30_000,
      env: { ...process.env, SYSTEMD_LOG_TARGET: "console" },
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const e = error as { code: number | string; stdout?: string; stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error(
        "systemd-analyze not found: install Debian's systemd package (.ci/run does when it is missing)",
      );
    }
    return { code: e.code, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/** The unit's directives, section by section; a key may repeat. */
function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1]) {
      current = [];
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 1) throw new Error(`not a directive: ${line}`);
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}

describe("the systemd unit", () => {
  test("systemd-analyze verify prints nothing and exits 0", async () => {
    // Under its own name in a folder of its own, as it is installed.
    const path = join(dir.path, "0xbtcpay.service");
    copyFileSync(UNIT, path);
    expect(await verify(path)).toEqual({ code: 0, output: "" });
  });

  test("systemd-analyze verify does read the directives: a misspelt one is reported", async () => {
    const path = join(dir.path, "misspelt.service");
    writeFileSync(
      path,
      readFileSync(UNIT, "utf8").replace(/^ProtectSystem=strict$/m, "ProtectSytem=strict"),
    );
    const { output } = await verify(path);
    expect(output).toContain("Unknown key 'ProtectSytem' in section [Service], ignoring.");
  });

  test("runs the compiled daemon as a dedicated user, with the hardening and limits docs/production.md lists", async () => {
    const unit = parseUnit(readFileSync(UNIT, "utf8"));
    const service = new Map(unit.get("Service"));
    expect(service.get("ExecStart")).toBe(
      "node /opt/0xbtcpay/bin/0xbtcpay serve --config /etc/0xbtcpay/config.json",
    );
    expect({
      User: service.get("User"),
      StateDirectory: service.get("StateDirectory"),
      StateDirectoryMode: service.get("StateDirectoryMode"),
      ProtectSystem: service.get("ProtectSystem"),
      ProtectHome: service.get("ProtectHome"),
      NoNewPrivileges: service.get("NoNewPrivileges"),
      PrivateTmp: service.get("PrivateTmp"),
      PrivateDevices: service.get("PrivateDevices"),
      CapabilityBoundingSet: service.get("CapabilityBoundingSet"),
      RestrictAddressFamilies: service.get("RestrictAddressFamilies"),
      SystemCallFilter: service.get("SystemCallFilter"),
      SystemCallArchitectures: service.get("SystemCallArchitectures"),
      KillSignal: service.get("KillSignal"),
      LimitNOFILE: service.get("LimitNOFILE"),
    }).toEqual({
      User: "oxbtcpay",
      StateDirectory: "0xbtcpay",
      StateDirectoryMode: "0700",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      NoNewPrivileges: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      CapabilityBoundingSet: "",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
      SystemCallFilter: "@system-service",
      SystemCallArchitectures: "native",
      KillSignal: "SIGTERM",
      LimitNOFILE: "65536",
    });
    // V8's JIT needs writable and executable memory: node dies at start with it.
    expect(service.has("MemoryDenyWriteExecute")).toBe(false);
    expect(new Map(unit.get("Install")).get("WantedBy")).toBe("multi-user.target");
  });
});
