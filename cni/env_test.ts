import assert from "node:assert/strict";
import { catchCni } from "../tests/cni/helpers.ts";
import {
  parseInvocation,
  parseStdinConfig,
  readCniEnv,
  validateContainerId,
  validateInterfaceName,
  validatePluginType,
} from "./env.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

/** A file standing in for a netns path: it exists and is not our own netns. */
const fakeNetns = Deno.makeTempFileSync({ prefix: "hydra-netns-" });
addEventListener("unload", () => Deno.removeSync(fakeNetns));

function env(
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "abc123",
    CNI_NETNS: fakeNetns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
    ...overrides,
  };
}

Deno.test("readCniEnv returns the parsed environment", () => {
  const e = readCniEnv(env({ CNI_ARGS: "A=1", CNI_PATH: "/a::/b" }));
  assert.deepEqual(e, {
    command: "ADD",
    containerId: "abc123",
    netns: fakeNetns,
    ifName: "eth0",
    args: "A=1",
    path: ["/a", "/b"],
    netnsOverride: false,
  });
});

Deno.test("missing variables are code 4 and every missing name is listed", () => {
  const cases: [Record<string, string | undefined>, string][] = [
    [{ CNI_COMMAND: undefined }, "CNI_COMMAND"],
    [{ CNI_NETNS: undefined, CNI_IFNAME: "" }, "CNI_NETNS,CNI_IFNAME"],
    [{ CNI_CONTAINERID: "" }, "CNI_CONTAINERID"],
    [{ CNI_PATH: undefined }, "CNI_PATH"],
    [{ CNI_COMMAND: "DEL", CNI_IFNAME: undefined, CNI_PATH: undefined }, "CNI_IFNAME,CNI_PATH"],
    [{ CNI_COMMAND: "CHECK", CNI_NETNS: undefined }, "CNI_NETNS"],
  ];
  for (const [over, names] of cases) {
    const err = catchCni(() => readCniEnv(env(over)));
    assert.equal(err.code, 4);
    assert.equal(err.message, `required env variables [${names}] missing`);
  }
});

Deno.test("what each command requires: DEL needs no netns, GC/STATUS only PATH, VERSION nothing", () => {
  readCniEnv(env({ CNI_COMMAND: "DEL", CNI_NETNS: undefined }));
  readCniEnv({ CNI_COMMAND: "GC", CNI_PATH: "/x" });
  readCniEnv({ CNI_COMMAND: "STATUS", CNI_PATH: "/x" });
  readCniEnv({ CNI_COMMAND: "VERSION" });
  assert.equal(catchCni(() => readCniEnv({ CNI_COMMAND: "GC" })).code, 4);
});

Deno.test("an unknown command is code 4", () => {
  const err = catchCni(() => readCniEnv(env({ CNI_COMMAND: "UPDATE" })));
  assert.equal(err.code, 4);
  assert.equal(err.message, "unknown CNI_COMMAND: UPDATE");
});

Deno.test("container IDs: empty is 3 when validated directly, path characters are 4", () => {
  assert.equal(catchCni(() => validateContainerId("")).code, 3);
  for (const bad of ["../etc", "a/b", "-abc", ".abc", "a b", "a:b", "ä"]) {
    const err = catchCni(() => readCniEnv(env({ CNI_CONTAINERID: bad })));
    assert.equal(err.code, 4, bad);
    assert.match(err.message, /CNI_CONTAINERID/);
  }
  validateContainerId("0a_b.c-D");
});

Deno.test("interface names: 1-15 bytes, not . or .., no / : or whitespace (code 4)", () => {
  validateInterfaceName("eth0");
  validateInterfaceName("a23456789012345");
  const bad = ["a234567890123456", "ééééééééé", ".", "..", "a/b", "a:b", "a b", "a\tb", "eth0\n"];
  for (const name of bad) {
    const err = catchCni(() => readCniEnv(env({ CNI_IFNAME: name })));
    assert.equal(err.code, 4, JSON.stringify(name));
    assert.match(err.message, /CNI_IFNAME/);
  }
  // An empty one is missing.
  assert.match(catchCni(() => readCniEnv(env({ CNI_IFNAME: "" }))).message, /missing/);
});

Deno.test("CNI_NETNS for ADD/CHECK must be an absolute path that exists (code 4)", () => {
  for (const command of ["ADD", "CHECK"]) {
    const rel = catchCni(() => readCniEnv(env({ CNI_COMMAND: command, CNI_NETNS: "run/netns/x" })));
    assert.equal(rel.code, 4);
    assert.match(rel.message, /CNI_NETNS: "run\/netns\/x" is not an absolute path/);
    const gone = catchCni(() =>
      readCniEnv(env({ CNI_COMMAND: command, CNI_NETNS: "/run/netns/hydra-none" }))
    );
    assert.equal(gone.code, 4);
    assert.match(gone.message, /CNI_NETNS/);
  }
  // DEL tolerates a namespace that is gone.
  readCniEnv(env({ CNI_COMMAND: "DEL", CNI_NETNS: "/run/netns/hydra-none" }));
});

Deno.test("CNI_NETNS naming the plugin's own namespace is code 8 unless overridden", () => {
  const err = catchCni(() => readCniEnv(env({ CNI_NETNS: "/proc/self/ns/net" })));
  assert.equal(err.code, 8);
  assert.equal(
    catchCni(() => readCniEnv(env({ CNI_COMMAND: "DEL", CNI_NETNS: "/proc/self/ns/net" }))).code,
    8,
  );
  for (const v of ["1", "true", "TRUE"]) {
    assert.equal(
      readCniEnv(env({ CNI_NETNS: "/proc/self/ns/net", CNI_NETNS_OVERRIDE: v })).netnsOverride,
      true,
    );
  }
});

Deno.test("stdin: not JSON is 6; name missing or invalid is 7; wrong types are 6", () => {
  const cases: [string, number, RegExp][] = [
    ["{not json", 6, /error parsing network config/],
    ["[1,2]", 6, /not a JSON object/],
    ["", 6, /error parsing network config/],
    [JSON.stringify({ cniVersion: "1.0.0", type: "x" }), 7, /missing network name \("name"\)/],
    [JSON.stringify({ name: "", type: "x" }), 7, /missing network name/],
    [
      JSON.stringify({ name: "bad/name", type: "x" }),
      7,
      /invalid characters found in network name "bad\/name"/,
    ],
    [JSON.stringify({ name: 5, type: "x" }), 6, /"name" must be a string/],
    [JSON.stringify({ name: "n", cniVersion: 1 }), 6, /"cniVersion" must be a string/],
    [JSON.stringify({ name: "n", type: "../bridge" }), 7, /"type": invalid plugin type/],
    [JSON.stringify({ name: "n", type: "a\\b" }), 7, /"type"/],
  ];
  for (const [text, code, re] of cases) {
    const err = catchCni(() => parseStdinConfig(enc(text)));
    assert.equal(err.code, code, text);
    assert.match(err.message, re);
  }
  assert.equal(parseStdinConfig(enc({ name: "n", type: "bridge", x: 1 })).x, 1);
});

Deno.test("validatePluginType rejects empty types and path separators", () => {
  assert.equal(catchCni(() => validatePluginType("")).code, 7);
  assert.equal(catchCni(() => validatePluginType("/usr/lib/cni/bridge")).code, 7);
  validatePluginType("hydra-bridge");
});

Deno.test("parseInvocation builds CmdArgs; VERSION ignores an unreadable stdin", () => {
  const stdin = enc({ cniVersion: "1.0.0", name: "net", type: "bridge" });
  const cmd = parseInvocation(env(), stdin);
  assert.equal(cmd.command, "ADD");
  assert.equal(cmd.config.name, "net");
  assert.equal(cmd.stdinData, stdin);
  assert.equal(
    parseInvocation({ CNI_COMMAND: "VERSION" }, enc("garbage")).config.cniVersion,
    undefined,
  );
  assert.equal(
    parseInvocation({ CNI_COMMAND: "VERSION" }, enc({ cniVersion: "0.4.0" })).config.cniVersion,
    "0.4.0",
  );
});

Deno.test("env checks come before stdin checks", () => {
  const err = catchCni(() => parseInvocation(env({ CNI_IFNAME: undefined }), enc("{bad")));
  assert.equal(err.code, 4);
});
