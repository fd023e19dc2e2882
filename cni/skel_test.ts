import assert from "node:assert/strict";
import { CniError } from "./errors.ts";
import type { Plugin } from "./types.ts";
import { invokeInProcess } from "./skel.ts";
import type { CmdArgs, Result } from "./types.ts";
import { SUPPORTED_VERSIONS } from "./types.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const fakeNetns = Deno.makeTempFileSync({ prefix: "hydra-netns-" });
addEventListener("unload", () => Deno.removeSync(fakeNetns));

interface Recorder extends Plugin {
  calls: string[];
}

function fakePlugin(overrides: Partial<Plugin> = {}): Recorder {
  const calls: string[] = [];
  const result: Result = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", mtu: 1500, sandbox: "/run/netns/x" }],
    ips: [{ interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
  };
  return {
    kind: "fake",
    supportedVersions: SUPPORTED_VERSIONS,
    calls,
    add: (a: CmdArgs) => {
      calls.push(`add ${a.containerId} ${a.ifName}`);
      return Promise.resolve(result);
    },
    del: () => {
      calls.push("del");
      return Promise.resolve();
    },
    check: () => {
      calls.push("check");
      return Promise.resolve();
    },
    ...overrides,
  };
}

function env(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "c1",
    CNI_NETNS: fakeNetns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/nowhere",
    ...extra,
  };
}

const conf = (cniVersion: string, extra: Record<string, unknown> = {}) =>
  enc({ cniVersion, name: "net", type: "fake", ...extra });

Deno.test("ADD prints the result in the config's version and exits 0", async () => {
  const plugin = fakePlugin();
  const out = await invokeInProcess(plugin, env("ADD"), conf("0.3.1"));
  assert.equal(out.code, 0);
  assert.deepEqual(JSON.parse(out.stdout), {
    cniVersion: "0.3.1",
    interfaces: [{ name: "eth0", sandbox: "/run/netns/x" }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
  });
  assert.deepEqual(plugin.calls, ["add c1 eth0"]);
  assert.equal(Deno.env.get("CNI_COMMAND"), undefined, "process env untouched");
});

Deno.test("DEL and CHECK print nothing on success", async () => {
  const plugin = fakePlugin();
  assert.deepEqual(await invokeInProcess(plugin, env("DEL"), conf("1.0.0")), {
    stdout: "",
    code: 0,
  });
  assert.deepEqual(await invokeInProcess(plugin, env("CHECK"), conf("0.4.0")), {
    stdout: "",
    code: 0,
  });
  assert.deepEqual(plugin.calls, ["del", "check"]);
});

Deno.test("errors: JSON on stdout with the code, tagged with the config's version, exit 1", async () => {
  const failing = fakePlugin({
    add: () => Promise.reject(new CniError(11, "busy", "try later")),
    del: () => Promise.reject(new Error("boom")),
  });
  const add = await invokeInProcess(failing, env("ADD"), conf("1.0.0"));
  assert.equal(add.code, 1);
  assert.deepEqual(JSON.parse(add.stdout), {
    cniVersion: "1.0.0",
    code: 11,
    msg: "busy",
    details: "try later",
  });
  const del = await invokeInProcess(failing, env("DEL"), conf("0.4.0"));
  assert.deepEqual(JSON.parse(del.stdout), { cniVersion: "0.4.0", code: 999, msg: "boom" });
});

Deno.test("bad env and stdin reach the runtime as error JSON without calling the plugin", async () => {
  const plugin = fakePlugin();
  const cases: [Record<string, string>, Uint8Array, number][] = [
    [env("ADD", { CNI_IFNAME: "much-too-long-name" }), conf("1.0.0"), 4],
    [env("ADD", { CNI_CONTAINERID: "a/b" }), conf("1.0.0"), 4],
    [env("FROB"), conf("1.0.0"), 4],
    [env("ADD"), new TextEncoder().encode("{"), 6],
    [env("ADD"), enc({ cniVersion: "1.0.0", type: "fake" }), 7],
    [env("ADD"), conf("2.0.0"), 1],
    [env("ADD"), conf("1.0"), 1],
  ];
  for (const [e, stdin, code] of cases) {
    const out = await invokeInProcess(plugin, e, stdin);
    assert.equal(out.code, 1);
    const json = JSON.parse(out.stdout);
    assert.equal(json.code, code, out.stdout);
    assert.equal(typeof json.msg, "string");
  }
  assert.deepEqual(plugin.calls, []);
});

Deno.test("CHECK needs config >= 0.4.0; STATUS and GC need >= 1.1.0 (code 1)", async () => {
  const plugin = fakePlugin();
  for (const [command, version] of [["CHECK", "0.3.1"], ["STATUS", "1.0.0"], ["GC", "0.4.0"]]) {
    const out = await invokeInProcess(plugin, env(command), conf(version));
    const json = JSON.parse(out.stdout);
    assert.equal(json.code, 1);
    assert.equal(json.msg, `config version does not allow ${command}`);
  }
  assert.deepEqual(plugin.calls, []);
});

Deno.test("a plugin without status/gc succeeds on them; with them they are called", async () => {
  const plain = fakePlugin();
  assert.deepEqual(
    await invokeInProcess(plain, { CNI_COMMAND: "STATUS", CNI_PATH: "/x" }, conf("1.1.0")),
    {
      stdout: "",
      code: 0,
    },
  );
  const seen: unknown[] = [];
  const full = fakePlugin({
    status: () => Promise.reject(new CniError(50, "not ready")),
    gc: (a) => {
      seen.push(a.config["cni.dev/valid-attachments"]);
      return Promise.resolve();
    },
  });
  const status = await invokeInProcess(
    full,
    { CNI_COMMAND: "STATUS", CNI_PATH: "/x" },
    conf("1.1.0"),
  );
  assert.equal(JSON.parse(status.stdout).code, 50);
  const valid = [{ containerID: "c1", ifname: "eth0" }];
  const gc = await invokeInProcess(
    full,
    { CNI_COMMAND: "GC", CNI_PATH: "/x" },
    conf("1.1.0", { "cni.dev/valid-attachments": valid }),
  );
  assert.deepEqual(gc, { stdout: "", code: 0 });
  assert.deepEqual(seen, [valid]);
});

Deno.test("a config version the plugin does not list is code 1", async () => {
  const old = fakePlugin({ supportedVersions: ["0.3.1", "0.4.0"] });
  const out = await invokeInProcess(old, env("ADD"), conf("1.0.0"));
  const json = JSON.parse(out.stdout);
  assert.equal(json.code, 1);
  assert.match(json.details, /plugin supports/);
});

Deno.test("VERSION answers with the plugin's versions, needing no other variable", async () => {
  const out = await invokeInProcess(fakePlugin({ supportedVersions: ["0.4.0", "1.0.0"] }), {
    CNI_COMMAND: "VERSION",
  }, enc({ cniVersion: "1.0.0" }));
  assert.equal(out.code, 0);
  assert.deepEqual(JSON.parse(out.stdout), {
    cniVersion: "1.0.0",
    supportedVersions: ["0.4.0", "1.0.0"],
  });
});

Deno.test("a result that cannot be expressed in the config's version is an error", async () => {
  const noIp = fakePlugin({
    add: () => Promise.resolve({ cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] }),
  });
  const out = await invokeInProcess(noIp, env("ADD"), conf("0.2.0"));
  assert.equal(out.code, 1);
  assert.match(JSON.parse(out.stdout).msg, /no valid IP addresses/);
});
