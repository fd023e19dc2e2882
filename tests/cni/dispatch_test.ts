/**
 * argv[0] dispatch through the launcher (bin/hydra) and its role symlinks,
 * exec'd exactly as a runtime or a user would.
 */

import assert from "node:assert/strict";
import { builtinNames } from "../../engine/builtins.ts";
import { SUPPORTED_VERSIONS } from "../../cni/types.ts";
import { type ExecOutput, execWithStdin } from "../helpers/cni.ts";
import { withTempDir } from "../helpers/netns.ts";
import { REPO_ROOT } from "./helpers.ts";

function exec(
  program: string,
  args: string[],
  env: Record<string, string> = {},
  stdin = "",
): Promise<ExecOutput> {
  return execWithStdin(
    program,
    args,
    { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    stdin,
  );
}

const HYDRA = `${REPO_ROOT}/bin/hydra`;

Deno.test("hydra version, --help, and no arguments", async () => {
  const version = await exec(HYDRA, ["version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^hydra \d+\.\d+\.\d+/);
  assert.match(version.stdout, /1\.1\.0/);
  const json = await exec(HYDRA, ["version", "--json"]);
  assert.deepEqual(JSON.parse(json.stdout).cniVersions, [...SUPPORTED_VERSIONS]);
  const help = await exec(HYDRA, ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: hydra <command>/);
  const bare = await exec(HYDRA, []);
  assert.equal(bare.code, 2);
  const unknown = await exec(HYDRA, ["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

Deno.test("hydra with CNI_COMMAND set is the meta-CNI", async () => {
  const out = await exec(HYDRA, [], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}');
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), {
    cniVersion: "0.4.0",
    supportedVersions: [...SUPPORTED_VERSIONS],
  });
  const bad = await exec(HYDRA, [], { CNI_COMMAND: "ADD" }, "{}");
  assert.equal(bad.code, 1);
  assert.equal(JSON.parse(bad.stdout).code, 4);
});

Deno.test("every role symlink in bin/ runs its built-in plugin or says its name is unknown", async () => {
  const registered = new Set(builtinNames());
  let answered = 0;
  for await (const entry of Deno.readDir(`${REPO_ROOT}/bin`)) {
    if (!entry.isSymlink) continue;
    const path = `${REPO_ROOT}/bin/${entry.name}`;
    const out = await exec(path, [], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    if (registered.has(entry.name)) {
      assert.equal(out.code, 0, `${entry.name}: ${out.stderr}`);
      const info = JSON.parse(out.stdout);
      assert.equal(info.cniVersion, "1.0.0", entry.name);
      assert.ok(
        Array.isArray(info.supportedVersions) && info.supportedVersions.length > 0,
        entry.name,
      );
      answered++;
    } else {
      assert.notEqual(out.code, 0, entry.name);
      assert.match(out.stderr, new RegExp(`unknown role name "${entry.name}"`));
    }
  }
  assert.ok(answered >= 1, "at least one built-in plugin role answers");
});

Deno.test("dispatch goes by the name invoked: a symlink named hydra is hydra, an unknown one fails", async () => {
  await withTempDir(async (dir) => {
    await Deno.symlink(HYDRA, `${dir}/hydra`);
    await Deno.symlink(HYDRA, `${dir}/hydra-nope`);
    const meta = await exec(`${dir}/hydra`, [], { CNI_COMMAND: "VERSION" });
    assert.equal(meta.code, 0);
    assert.equal(JSON.parse(meta.stdout).cniVersion, "1.1.0");
    const nope = await exec(`${dir}/hydra-nope`, [], { CNI_COMMAND: "VERSION" });
    // Exec'd as a plugin, an unknown name still answers in the CNI error format.
    assert.notEqual(nope.code, 0);
    const err = JSON.parse(nope.stdout);
    assert.equal(err.code, 999);
    assert.match(err.msg, /no role named "hydra-nope"/);
    // Run by hand, it says so on stderr.
    const byHand = await exec(`${dir}/hydra-nope`, []);
    assert.equal(byHand.code, 2);
    assert.equal(byHand.stdout, "");
    assert.match(byHand.stderr, /no role named "hydra-nope"/);
  });
});

Deno.test("a plugin role run by hand (no CNI_COMMAND) describes itself on stderr", async () => {
  const role = builtinNames().find((n) => n !== "hydra");
  assert.ok(role, "hydra has built-in plugin roles");
  const out = await exec(`${REPO_ROOT}/bin/${role}`, []);
  assert.equal(out.code, 0);
  assert.equal(out.stdout, "");
  assert.match(out.stderr, /CNI protocol versions supported: /);
  // With a command but a broken env, it answers as a CNI plugin must.
  const bad = await exec(
    `${REPO_ROOT}/bin/${role}`,
    [],
    { CNI_COMMAND: "DEL", CNI_PATH: "/x" },
    "{}",
  );
  assert.equal(bad.code, 1);
  const json = JSON.parse(bad.stdout);
  assert.equal(json.code, 4);
  assert.match(json.msg, /CNI_CONTAINERID,CNI_IFNAME/);
});
