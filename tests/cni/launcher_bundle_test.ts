/**
 * The source launcher (bin/hydra) and the single-file CNI build
 * (tools/bundle.ts): a CNI invocation runs the bundle while none of the
 * files it was built from changed, and main.ts otherwise; everything that
 * is not a CNI invocation always runs main.ts. Exercised on a private copy
 * of the tree, so the repository's own bundle is never touched.
 */

import assert from "node:assert/strict";
import { execWithStdin } from "../helpers/cni.ts";
import { withTempDir } from "../helpers/netns.ts";
import { parseInputs } from "../../tools/bundle.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const SKIP = new Set([
  ".git",
  ".cache",
  ".ci",
  "tests",
  "tools",
  "docs",
  "dist",
  "node_modules",
]);
const decoder = new TextDecoder();

/** Runs `cmd` with the minimal environment a runtime gives a plugin, plus `env`. */
function run(cmd: string, args: string[], env: Record<string, string>, stdin = "") {
  return execWithStdin(cmd, args, {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    // The repository's cache: the copy would otherwise start cold.
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${ROOT}/.cache/deno`,
    ...env,
  }, stdin);
}

/** A stand-in for `hydra daemon` answering every request with `body`. */
function stubDaemon(path: string, body: unknown) {
  const listener = Deno.listen({ transport: "unix", path });
  const serving = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(64 * 1024);
      let line = "";
      while (!line.includes("\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        line += decoder.decode(buf.subarray(0, n));
      }
      await conn.write(new TextEncoder().encode(JSON.stringify({ ok: true, body }) + "\n"));
      conn.close();
    }
  })();
  return {
    async close() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

async function copyTree(to: string): Promise<void> {
  for await (const e of Deno.readDir(ROOT)) {
    if (SKIP.has(e.name)) continue;
    const cp = await new Deno.Command("cp", {
      args: ["-a", `${ROOT}/${e.name}`, to],
    }).output();
    assert.ok(cp.success, `cp ${e.name}`);
  }
  await Deno.mkdir(`${to}/tools`);
  await Deno.symlink(`${ROOT}/tools/node_modules`, `${to}/tools/node_modules`);
  await Deno.copyFile(`${ROOT}/tools/bundle.ts`, `${to}/tools/bundle.ts`);
}

Deno.test("bin/hydra runs the CNI bundle only while it is fresh, and only for CNI invocations", async () => {
  await withTempDir(async (dir) => {
    await copyTree(dir);
    const build = await run(Deno.execPath(), [
      "run",
      "-A",
      `${dir}/tools/bundle.ts`,
    ], {});
    assert.equal(build.code, 0, build.stderr);
    const bundle = `${dir}/.cache/bundle/hydra-cni.js`;
    const inputs = parseInputs(
      await Deno.readTextFile(`${bundle}.inputs`),
    );
    assert.ok(
      inputs.includes("cmd/exec_entry.ts") &&
        inputs.includes("cmd/plugin_main.ts") &&
        inputs.includes("plugins/bridge.ts"),
    );
    // The launcher's file holds the daemonExec shim, not the plugin path.
    const entry = await Deno.readTextFile(bundle);
    const full = await Deno.readTextFile(`${dir}/.cache/bundle/hydra-cni-full.js`);
    assert.ok(entry.length * 10 < full.length, "the entry is a small part of the bundle");
    // Nothing is loaded with the files themselves from Node's layer or npm (each costs every exec
    // tens of milliseconds): such imports are dynamic, or in the kubelet client's own file.
    for (const [name, code] of [["entry", entry], ["plugin path", full]]) {
      const eager = code.match(/^import\b.*\bfrom\s*["'](node|npm):[^"']*["']/gm) ?? [];
      assert.deepEqual(eager, [], `${name}: imports loaded on every exec`);
    }
    const kubelet = await Deno.readTextFile(`${dir}/.cache/bundle/hydra-cni-kubelet.js`);
    assert.match(kubelet, /node:buffer/, "the kubelet client keeps its Node import to itself");
    const check = await run(Deno.execPath(), [
      "run",
      "-A",
      `${dir}/tools/bundle.ts`,
      "--check",
    ], {});
    assert.equal(check.code, 0, "a fresh build is fresh");

    // The real bundle answers like main.ts does.
    const version = '{"cniVersion":"1.0.0"}';
    const real = await run(`${dir}/bin/hydra-bridge`, [], {
      CNI_COMMAND: "VERSION",
    }, version);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(JSON.parse(real.stdout).cniVersion, "1.0.0");

    const metaVersion = await run(`${dir}/bin/hydra`, [], {
      CNI_COMMAND: "VERSION",
    }, version);
    assert.equal(metaVersion.code, 0, metaVersion.stderr);
    assert.ok(JSON.parse(metaVersion.stdout).supportedVersions.includes("1.1.0"));

    // daemonExec: the entry hands the invocation to the daemon and prints its answer.
    const socket = `${dir}/daemon.sock`;
    const daemon = stubDaemon(socket, {
      stdout: '{"cniVersion":"1.0.0","code":7,"msg":"from the daemon"}',
      code: 1,
    });
    try {
      const handed = await run(
        `${dir}/bin/hydra`,
        [],
        {
          CNI_COMMAND: "DEL",
          CNI_CONTAINERID: "ctr1",
          CNI_IFNAME: "eth0",
          CNI_PATH: "/usr/lib/cni",
        },
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "m",
          type: "hydra",
          daemonExec: true,
          daemonSocket: socket,
        }),
      );
      assert.equal(handed.code, 1, handed.stderr);
      assert.deepEqual(JSON.parse(handed.stdout), {
        cniVersion: "1.0.0",
        code: 7,
        msg: "from the daemon",
      });
    } finally {
      await daemon.close();
    }

    // A stand-in with the bundle's time shows which file the launcher ran.
    const built = (await Deno.stat(bundle)).mtime!;
    await Deno.writeTextFile(
      bundle,
      'console.log(JSON.stringify({ ranBundleAs: Deno.env.get("HYDRA_ARGV0") }));\n',
    );
    await Deno.utime(bundle, built, built);
    const viaBundle = await run(`${dir}/bin/hydra-bridge`, [], {
      CNI_COMMAND: "VERSION",
    }, version);
    assert.deepEqual(JSON.parse(viaBundle.stdout), {
      ranBundleAs: "hydra-bridge",
    });
    const meta = await run(
      `${dir}/bin/hydra`,
      [],
      { CNI_COMMAND: "VERSION" },
      version,
    );
    assert.deepEqual(JSON.parse(meta.stdout), { ranBundleAs: "hydra" });

    // Not CNI invocations: the command line, from main.ts.
    const cli = await run(`${dir}/bin/hydra`, ["version"], {});
    assert.match(cli.stdout, /^hydra \d+\.\d+\.\d+/);
    const withArgs = await run(`${dir}/bin/hydra`, ["version"], {
      CNI_COMMAND: "VERSION",
    });
    assert.match(withArgs.stdout, /^hydra \d+\.\d+\.\d+/);

    // An edited source makes the bundle stale: main.ts runs instead.
    const later = new Date(built.getTime() + 2000);
    await Deno.utime(`${dir}/engine/builtins.ts`, later, later);
    const stale = await run(`${dir}/bin/hydra-bridge`, [], {
      CNI_COMMAND: "VERSION",
    }, version);
    assert.equal(stale.code, 0, stale.stderr);
    assert.deepEqual(
      JSON.parse(stale.stdout).supportedVersions.includes("1.1.0"),
      true,
    );
    const checkStale = await run(
      Deno.execPath(),
      ["run", "-A", `${dir}/tools/bundle.ts`, "--check"],
      {},
    );
    assert.equal(checkStale.code, 1, "an edited input makes the build stale");
  });
});
