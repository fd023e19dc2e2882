/**
 * How bin/hydra starts Deno for each kind of command: a long-running role
 * without V8's code cache (a SQLite file Deno would keep mapped for the
 * process's whole life), a short command with it (its start is all it does).
 */

import assert from "node:assert/strict";
import { withTempDir } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { writeScript } from "../cni/helpers.ts";

/** The arguments bin/hydra hands Deno for `args`, read through a stand-in Deno. */
async function denoArgs(dir: string, args: string[]): Promise<string[]> {
  const out = await new Deno.Command(`${REPO_ROOT}/bin/hydra`, {
    args,
    env: { HYDRA_DENO: `${dir}/deno` },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

Deno.test("bin/hydra runs the long-running roles without V8's code cache, short commands with it", async () => {
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/deno`, `for a in "$@"; do printf '%s\\n' "$a"; done`);
    const long = [
      ["daemon"],
      ["daemon", "--kubeconfig", "k"],
      ["nri", "serve"],
      ["dra", "serve"],
      ["route", "sync", "--nodes-file", "f"],
      ["hybrid", "sync"],
      ["policy", "sync"],
      ["ipam", "controller"],
    ];
    for (const args of long) {
      const got = await denoArgs(dir, args);
      assert.ok(got.includes("--no-code-cache"), `${args.join(" ")}: ${got.join(" ")}`);
      assert.deepEqual(got.slice(-args.length), args);
    }
    for (const args of [["version"], ["route"], ["ipam", "pools"], ["doctor"], ["nri"]]) {
      const got = await denoArgs(dir, args);
      assert.ok(!got.includes("--no-code-cache"), `${args.join(" ")}: ${got.join(" ")}`);
    }
  });
});

Deno.test("a node daemon started by bin/hydra has no code cache mapped", async () => {
  await withTempDir(async (dir) => {
    // An API server nobody answers: the daemon starts anyway and retries its watches.
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "http://127.0.0.1:9" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
        "current-context": "c",
      }),
    );
    const child = new Deno.Command(`${REPO_ROOT}/bin/hydra`, {
      args: [
        "daemon",
        ...["--kubeconfig", `${dir}/kubeconfig`, "--node-name", "n1"],
        ...["--socket", `${dir}/run/daemon.sock`, "--spool-dir", `${dir}/spool`],
        ...["--health-addr", `unix:${dir}/health.sock`, "--cni-conf-dir", `${dir}/net.d`],
        ...["--log-level", "error"],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // Serving: its socket is there, so the launcher has exec'd Deno and every module is loaded.
      for (let i = 0; i < 150; i++) {
        if (await Deno.stat(`${dir}/run/daemon.sock`).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const maps = await Deno.readTextFile(`/proc/${child.pid}/maps`);
      assert.match(maps, /\/deno/, "the daemon runs");
      assert.doesNotMatch(maps, /v8_code_cache/);
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  });
});
