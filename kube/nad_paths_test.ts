import assert from "node:assert/strict";
import { CniError } from "../cni/errors.ts";
import type { ConfList } from "../cni/conf.ts";
import { checkNadPaths, DEFAULT_NAD_PATH_ROOTS, parseNadPathRoots } from "./nad_paths.ts";

function list(...plugins: Record<string, unknown>[]): ConfList {
  return { cniVersion: "1.0.0", name: "net", plugins } as unknown as ConfList;
}

function refusal(l: ConfList): string {
  try {
    checkNadPaths(l, DEFAULT_NAD_PATH_ROOTS, "NetworkAttachmentDefinition ns/evil");
  } catch (err) {
    assert.ok(err instanceof CniError);
    assert.equal(err.code, 7);
    return err.message;
  }
  throw new Error("accepted");
}

Deno.test("path keys of a definition from the API must lie under the node's roots", () => {
  // What the reference plugins and hydra's write by default is fine.
  checkNadPaths(
    list(
      { type: "bridge", ipam: { type: "host-local", dataDir: "/var/lib/cni/networks" } },
      { type: "tuning", dataDir: "/run/cni/tuning" },
      { type: "macvlan", ipam: { type: "kube-node", kubeconfig: "/etc/cni/net.d/hydra.d/k" } },
    ),
    DEFAULT_NAD_PATH_ROOTS,
    "NetworkAttachmentDefinition ns/ok",
  );
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ type: "bridge", ipam: { type: "host-local", dataDir: "/etc" } }, /ipam\.dataDir "\/etc"/],
    [
      { type: "bridge", ipam: { type: "host-local", dataDir: "/var/lib/cni/../../etc/cron.d" } },
      /ipam\.dataDir .* outside the allowed roots/,
    ],
    [{ type: "tuning", dataDir: "/root/.ssh" }, /dataDir "\/root\/\.ssh"/],
    [{ type: "bridge", logFile: "/etc/passwd" }, /logFile "\/etc\/passwd" .* logs paths/],
    [
      { type: "macvlan", ipam: { type: "kube-node", kubeconfig: "/etc/kubernetes/admin.conf" } },
      /ipam\.kubeconfig .* read paths/,
    ],
    [{ type: "bridge", ipam: { type: "x", resolvConf: "/etc/shadow" } }, /ipam\.resolvConf/],
    [{ type: "bridge", ipam: { type: "host-local", dataDir: "relative" } }, /not an absolute path/],
    [{ type: "bridge", ipam: { type: "host-local", dataDir: 7 } }, /must be a string path/],
    [
      { type: "hydra", binDir: "/tmp/evil", delegates: [] },
      /type "hydra" \(the meta-CNI itself\) cannot be used from the API/,
    ],
  ];
  for (const [plugin, re] of cases) {
    const msg = refusal(list(plugin));
    assert.match(msg, /^NetworkAttachmentDefinition ns\/evil: /, msg);
    assert.match(msg, re, msg);
  }
  // In a list, the plugin is named.
  assert.match(
    refusal(list({ type: "bridge" }, { type: "tuning", dataDir: "/etc" })),
    /ns\/evil plugins\[1\]: dataDir/,
  );
});

Deno.test("nadPathRoots: kinds given replace the defaults, the others stay", () => {
  const roots = parseNadPathRoots({ state: ["/data/cni"] });
  assert.deepEqual(roots.state, ["/data/cni"]);
  assert.deepEqual(roots.logs, DEFAULT_NAD_PATH_ROOTS.logs);
  assert.deepEqual(parseNadPathRoots(undefined), {
    state: [...DEFAULT_NAD_PATH_ROOTS.state],
    logs: [...DEFAULT_NAD_PATH_ROOTS.logs],
    read: [...DEFAULT_NAD_PATH_ROOTS.read],
  });
  assert.throws(() => parseNadPathRoots([]), /must be an object/);
  assert.throws(() => parseNadPathRoots({ bin: ["/x"] }), /unknown kind "bin"/);
  assert.throws(() => parseNadPathRoots({ state: "/x" }), /must be a list of strings/);
  assert.throws(() => parseNadPathRoots({ state: ["x"] }), /not an absolute path/);
});
