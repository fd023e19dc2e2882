/**
 * The CNI exec path (what a runtime's exec of hydra or a role link loads,
 * dynamic imports included) imports no `node:` built-in: loading Deno's Node
 * compatibility layer costs every plugin exec about 10 ms of CPU.
 *
 * One exception, loaded on demand: the kubelet's gRPC client (kubelet/), which
 * kube/networks.ts imports only when a pod's network names a device-plugin
 * `resourceName`; gRPC needs Node's layer, and only such pods pay for it.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Modules loaded only for networks with a `resourceName` (see above). */
const ON_DEMAND = /^kubelet\//;

interface Info {
  modules: { specifier: string; dependencies?: { specifier: string }[] }[];
}

Deno.test("nothing on the CNI exec path imports a node: module", async () => {
  for (const entry of ["cmd/exec_entry.ts", "cmd/plugin_main.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `${ROOT}/${entry}`],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(out.success, `deno info ${entry}`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as Info;
    const found = info.modules.filter((m) =>
      !ON_DEMAND.test(m.specifier.replace(`file://${ROOT}/`, ""))
    ).flatMap((m) =>
      (m.dependencies ?? []).filter((d) => d.specifier.startsWith("node:"))
        .map((d) => `${m.specifier.replace(`file://${ROOT}/`, "")} imports ${d.specifier}`)
    );
    assert.deepEqual(found, [], `${entry}: ${found.join("; ")}`);
  }
});
