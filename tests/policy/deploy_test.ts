/**
 * The policy role in deploy/: the MultiNetworkPolicy CRD is the same in
 * deploy/crds and in both setup files and has the Working Group's names
 * and fields; both setups run `hydra policy sync` in a DaemonSet of its own
 * with arguments it accepts, the host paths it reads and writes, and a
 * role of its own that reads and records Events only.
 * (That the role is enough, and that the CRD serves, the tests against a
 * real API server show: tests/policy/world.ts uses both.)
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../cni/helpers.ts";
import {
  DEFAULT_META_CACHE_DIR,
  DEFAULT_NRI_CACHE_DIR,
  parsePolicyArgs,
} from "../../policy/options.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

function loadDocs(name: string): Obj[] {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${REPO_ROOT}/deploy/${name}`));
  for (const d of docs) assert.deepEqual(d.errors, [], name);
  return docs.map((d) => d.toJSON()).filter((d) => d !== null);
}

function find(docs: Obj[], kind: string, name?: string): Obj {
  const doc = docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.ok(doc, `${kind} ${name ?? ""}`);
  return doc;
}

const CRD = "multi-networkpolicies.k8s.cni.cncf.io";

Deno.test("the MultiNetworkPolicy CRD: Working Group names and fields, the same everywhere", () => {
  const [crd] = loadDocs("crds/multi-networkpolicy.yaml");
  assert.equal(crd.metadata.name, CRD);
  assert.equal(crd.spec.group, "k8s.cni.cncf.io");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.deepEqual(crd.spec.names.shortNames, ["multi-policy"]);
  assert.equal(crd.spec.names.kind, "MultiNetworkPolicy");
  assert.equal(crd.spec.names.plural, "multi-networkpolicies");
  const v = crd.spec.versions.find((v: Obj) => v.name === "v1beta1");
  assert.ok(v.served && v.storage);
  const spec = v.schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(spec.required, ["podSelector"]);
  const ingress = spec.properties.ingress.items.properties;
  const egress = spec.properties.egress.items.properties;
  assert.deepEqual(egress.to, ingress.from, "the same peer schema");
  assert.equal(ingress.ports.items.properties.port["x-kubernetes-int-or-string"], true);
  assert.deepEqual(ingress.from.items.properties.ipBlock.required, ["cidr"]);
  assert.deepEqual(
    Object.keys(ingress.from.items.properties.namespaceSelector.properties).sort(),
    ["matchExpressions", "matchLabels"],
  );
  for (const file of ["hydra-meta.yaml", "hydra-nri.yaml"]) {
    assert.deepEqual(find(loadDocs(file), "CustomResourceDefinition", CRD), crd, file);
  }
});

Deno.test("both setups run hydra policy sync with a read-only role and the host paths it needs", () => {
  for (const file of ["hydra-meta.yaml", "hydra-nri.yaml"]) {
    const docs = loadDocs(file);
    const role = find(docs, "ClusterRole", "hydra-policy");
    for (const rule of role.rules) {
      const verbs = rule.resources.includes("events") ? ["create"] : ["list", "watch"];
      assert.deepEqual(rule.verbs, verbs, `${file}: reads, and Events`);
    }
    assert.deepEqual(role.rules.flatMap((r: Obj) => r.resources).sort(), [
      "events",
      "multi-networkpolicies",
      "namespaces",
      "network-attachment-definitions",
      "pods",
    ]);
    const binding = find(docs, "ClusterRoleBinding", "hydra-policy");
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "hydra-policy", namespace: "hydra-system" },
    ]);
    const pod = find(docs, "DaemonSet", "hydra-policy").spec.template.spec;
    assert.equal(pod.serviceAccountName, "hydra-policy");
    const c = pod.containers.find((c: Obj) => c.name === "policy");
    assert.ok(c, `${file} runs the policy container`);
    assert.deepEqual(c.args.slice(0, 2), ["policy", "sync"]);
    const opts = parsePolicyArgs(c.args.slice(2), new Map() as unknown as Deno.Env);
    assert.equal(opts.kubeconfig, undefined, "the in-cluster ServiceAccount");
    assert.equal(opts.metaCacheDir, DEFAULT_META_CACHE_DIR);
    assert.equal(opts.nriCacheDir, DEFAULT_NRI_CACHE_DIR);
    assert.deepEqual(opts.listen, {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: c.readinessProbe.httpGet.port,
    });
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.equal(c.securityContext.privileged, true);
    const mounts: Obj[] = c.volumeMounts;
    const covers = (path: string) =>
      mounts.some((m) =>
        (path === m.mountPath || path.startsWith(`${m.mountPath}/`)) && !m.readOnly
      );
    for (const dir of [opts.metaCacheDir!, opts.nriCacheDir!, opts.stateDir]) {
      assert.ok(covers(dir), `${file}: ${dir} mounted`);
    }
    const netns = mounts.find((m) => m.mountPath === "/var/run/netns");
    assert.equal(netns?.mountPropagation, "HostToContainer");
  }
});
