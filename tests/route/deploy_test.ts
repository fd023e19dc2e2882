import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseRouterConfig } from "../../route/config.ts";
import { parseRouteArgs } from "../../route/options.ts";
import { readYamlSubset } from "../../pkg/yaml_subset.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const manifest = new URL("../../deploy/hydra-router.yaml", import.meta.url);

Deno.test("the router DaemonSet reads its networks file from the ConfigMap it mounts", async () => {
  const docs: Obj[] = parseAllDocuments(Deno.readTextFileSync(manifest)).map((d) => d.toJSON());
  const ds = docs.find((d) => d.kind === "DaemonSet")!;
  const pod = ds.spec.template.spec;
  const [route] = pod.containers;
  const opts = parseRouteArgs(route.args.slice(2));
  assert.ok(opts.config, "--config is passed");
  const dir = opts.config.slice(0, opts.config.lastIndexOf("/"));
  const file = opts.config.slice(dir.length + 1);
  const mount = route.volumeMounts.find((m: Obj) => m.mountPath === dir);
  assert.ok(mount?.readOnly, `${dir} is mounted read-only`);
  const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
  const cm = docs.find((d) =>
    d.kind === "ConfigMap" && d.metadata.name === volume.configMap.name &&
    d.metadata.namespace === ds.metadata.namespace
  );
  assert.ok(cm, "the ConfigMap is in the manifest, beside the DaemonSet");
  // One routed network, protocol 202, limited to the cluster CIDR.
  const { networks, problems } = await parseRouterConfig(cm.data[file], file);
  // Plain YAML: read without loading the full YAML parser (pkg/config_text.ts).
  assert.ok(readYamlSubset(cm.data[file]), "the shipped networks file is in the YAML subset");
  assert.deepEqual(problems, []);
  assert.deepEqual(networks.map((n) => [n.name, n.mode, n.protocol, n.table]), [
    ["default", "routed", 202, 254],
  ]);
  // Only pod CIDRs inside the cluster CIDR are routed: a node cannot claim any range it likes.
  assert.deepEqual(networks[0].allowedCIDRs, ["10.244.0.0/16"]);
});
