import assert from "node:assert/strict";
import { rejectsCni, writeScript } from "../tests/cni/helpers.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import { BUILTINS } from "../engine/builtins.ts";
import {
  execPlugin,
  findInPath,
  getVersionInfo,
  invokePlugin,
  type PluginRequest,
} from "./invoke.ts";
import type { Builtins } from "./types.ts";

const base = (dir: string, over: Partial<PluginRequest> = {}): PluginRequest => ({
  command: "ADD",
  type: "fake",
  config: { cniVersion: "1.0.0", name: "net", type: "fake" },
  containerId: "c1",
  netns: "/run/netns/x",
  ifName: "eth0",
  args: "A=1;B=2",
  path: [dir],
  ...over,
});

Deno.test("findInPath: first regular file in path order; bad names are code 7", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/one/fake`, { recursive: true }); // a directory is skipped
    await Deno.mkdir(`${dir}/two`);
    await Deno.mkdir(`${dir}/three`);
    await writeScript(`${dir}/two/fake`, "exit 0");
    await writeScript(`${dir}/three/fake`, "exit 0");
    assert.equal(
      await findInPath("fake", [`${dir}/one`, `${dir}/two`, `${dir}/three`]),
      `${dir}/two/fake`,
    );
    for (const bad of ["", "../fake", "sub/fake", "a\\b"]) {
      assert.equal((await rejectsCni(() => findInPath(bad, [`${dir}/two`]))).code, 7, bad);
    }
    const missing = await rejectsCni(() => findInPath("nope", [`${dir}/one`, `${dir}/two`]));
    assert.equal(missing.message, `failed to find plugin "nope" in path [${dir}/one ${dir}/two]`);
    assert.match((await rejectsCni(() => findInPath("fake", []))).message, /no paths provided/);
  });
});

Deno.test("exec: config on stdin, inherited env plus CNI_* (CNI_* win), result parsed", async () => {
  await withTempDir(async (dir) => {
    await writeScript(
      `${dir}/fake`,
      `cat > ${dir}/stdin; env > ${dir}/env
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'`,
    );
    const result = await invokePlugin(base(dir, {
      baseEnv: { KEEP_ME: "yes", CNI_COMMAND: "DEL", CNI_IFNAME: "wrong" },
    }));
    assert.deepEqual(result, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/stdin`)), {
      cniVersion: "1.0.0",
      name: "net",
      type: "fake",
    });
    const env = Object.fromEntries(
      (await Deno.readTextFile(`${dir}/env`)).trim().split("\n").map((
        l,
      ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assert.equal(env.KEEP_ME, "yes");
    assert.equal(env.CNI_COMMAND, "ADD");
    assert.equal(env.CNI_CONTAINERID, "c1");
    assert.equal(env.CNI_NETNS, "/run/netns/x");
    assert.equal(env.CNI_IFNAME, "eth0");
    assert.equal(env.CNI_ARGS, "A=1;B=2");
    assert.equal(env.CNI_PATH, dir);
  });
});

Deno.test("exec: stdout and stderr are read whole, however many reads they take", async () => {
  await withTempDir(async (dir) => {
    // Larger than a pipe and than a read; interleaved, so neither pipe may stall the other.
    await writeScript(
      `${dir}/fake`,
      `cat > /dev/null
for i in 1 2 3 4 5 6 7 8; do head -c 40000 /dev/zero | tr '\\0' o; head -c 3000 /dev/zero | tr '\\0' e >&2; done
printf end`,
    );
    const out = await execPlugin(`${dir}/fake`, new TextEncoder().encode("{}"), {});
    assert.equal(out.code, 0);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(stdout.length, 8 * 40000 + 3);
    assert.match(stdout, /^o+end$/);
    assert.equal(new TextDecoder().decode(out.stderr), "e".repeat(8 * 3000));
  });
});

Deno.test("a result without cniVersion takes the config's; a non-JSON result is code 6", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/fake`, `echo '{"ips":[{"version":"4","address":"10.0.0.2/24"}]}'`);
    const r = await invokePlugin(
      base(dir, { config: { cniVersion: "0.4.0", name: "n", type: "fake" } }),
    );
    assert.equal(r?.cniVersion, "0.4.0");
    await writeScript(`${dir}/fake`, `echo 'hello'`);
    assert.equal((await rejectsCni(() => invokePlugin(base(dir)))).code, 6);
    // Other commands ignore stdout.
    assert.equal(await invokePlugin(base(dir, { command: "DEL" })), undefined);
  });
});

Deno.test("failures: the plugin's error code passes through; empty output quotes stderr", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/fake`, `echo '{"code":42,"msg":"no luck","details":"why"}'; exit 3`);
    let err = await rejectsCni(() => invokePlugin(base(dir)));
    assert.deepEqual([err.code, err.message, err.details], [42, "no luck", "why"]);

    await writeScript(
      `${dir}/fake`,
      `echo '{"cniVersion":"1.0.0","code":11,"msg":"later"}'; exit 1`,
    );
    assert.equal((await rejectsCni(() => invokePlugin(base(dir, { command: "DEL" })))).code, 11);

    await writeScript(`${dir}/fake`, `echo 'it broke' >&2; exit 2`);
    err = await rejectsCni(() => invokePlugin(base(dir)));
    assert.equal(err.code, 999);
    assert.equal(err.message, 'netplugin failed: "it broke": exit status 2');

    await writeScript(`${dir}/fake`, `exit 1`);
    assert.equal(
      (await rejectsCni(() => invokePlugin(base(dir)))).message,
      "netplugin failed with no error message: exit status 1",
    );

    await writeScript(`${dir}/fake`, `echo 'garbage'; exit 1`);
    assert.match(
      (await rejectsCni(() => invokePlugin(base(dir)))).message,
      /error parsing its diagnostic message "garbage"/,
    );
  });
});

Deno.test("a plugin running past its timeout is killed and reported", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/fake`, `echo $$ > ${dir}/pid; exec sleep 30`);
    const err = await rejectsCni(() => invokePlugin(base(dir, { timeoutMs: 300 })));
    assert.match(err.message, /timed out after 0.3s/);
    const pid = (await Deno.readTextFile(`${dir}/pid`)).trim();
    let alive = true;
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      alive = !/\) [ZX] /.test(stat);
    } catch {
      alive = false;
    }
    assert.equal(alive, false, "plugin process is gone");
  });
});

Deno.test("exec retries while the binary is busy being written (ETXTBSY)", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/fake`, `echo '{"cniVersion":"1.0.0"}'`);
    // An open write handle makes exec fail with "text file busy".
    const writer = await Deno.open(`${dir}/fake`, { write: true });
    const pending = invokePlugin(base(dir));
    await new Promise((r) => setTimeout(r, 200));
    writer.close();
    assert.deepEqual(await pending, { cniVersion: "1.0.0" });
  });
});

Deno.test("built-in types handed in run in-process (no file on CNI_PATH needed)", async () => {
  const info = await getVersionInfo("hydra", [], undefined, BUILTINS);
  assert.equal(info.cniVersion, "1.1.0");
  assert.ok(info.supportedVersions.includes("0.1.0") && info.supportedVersions.includes("1.1.0"));
  // The same error JSON path as an exec: a bad config fails with its code.
  const netns = await Deno.makeTempFile();
  try {
    const err = await rejectsCni(() =>
      invokePlugin({
        command: "ADD",
        type: "hydra",
        config: { cniVersion: "1.0.0", type: "hydra" },
        path: ["/x"],
        containerId: "c",
        ifName: "eth0",
        netns,
        builtins: BUILTINS,
      })
    );
    assert.equal(err.code, 7);
    assert.match(err.message, /missing network name/);
  } finally {
    await Deno.remove(netns);
  }
});

Deno.test("without builtins every type is exec'd from CNI_PATH; with them only theirs run in-process", async () => {
  const missing = await rejectsCni(() => getVersionInfo("hydra", ["/nonexistent"]));
  assert.equal(missing.code, 7);
  assert.match(missing.message, /failed to find plugin "hydra" in path \[\/nonexistent\]/);
  const calls: string[] = [];
  const fake: Builtins = {
    has: (type) => type === "inproc",
    load: (type) => {
      if (type !== "inproc") return undefined;
      calls.push(type);
      return Promise.resolve({
        kind: "inproc",
        supportedVersions: ["1.0.0"],
        add: (args) => {
          // Handed on to the plugin, for what it invokes in turn.
          assert.equal(args.builtins, fake);
          return Promise.resolve({ cniVersion: "1.0.0", ips: [{ address: "10.9.0.2/24" }] });
        },
        del: () => Promise.resolve(),
        check: () => Promise.resolve(),
      });
    },
  };
  await withTempDir(async (dir) => {
    const netns = await Deno.makeTempFile({ dir });
    const result = await invokePlugin(
      base(dir, {
        type: "inproc",
        netns,
        builtins: fake,
        config: { cniVersion: "1.0.0", name: "n", type: "inproc" },
      }),
    );
    assert.deepEqual(result, { cniVersion: "1.0.0", ips: [{ address: "10.9.0.2/24" }] });
    assert.deepEqual(calls, ["inproc"]);
    await writeScript(`${dir}/fake`, `echo '{"cniVersion":"1.0.0"}'`);
    assert.deepEqual(await invokePlugin(base(dir, { builtins: fake })), { cniVersion: "1.0.0" });
    assert.deepEqual(calls, ["inproc"], "a type the builtins lack is exec'd");
  });
});

Deno.test("getVersionInfo: modern, 0.2.0-style and pre-VERSION plugins", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/fake`, `echo '{"cniVersion":"0.2.0"}'`);
    assert.deepEqual((await getVersionInfo("fake", [dir])).supportedVersions, ["0.1.0", "0.2.0"]);
    await writeScript(
      `${dir}/fake`,
      `echo '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1`,
    );
    assert.deepEqual((await getVersionInfo("fake", [dir])).supportedVersions, ["0.1.0"]);
  });
  const bridge = await getVersionInfo("bridge", ["/usr/lib/cni"]);
  assert.ok(bridge.supportedVersions.includes("1.0.0"));
});
