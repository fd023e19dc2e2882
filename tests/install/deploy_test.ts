/**
 * The manifests in deploy/, read as a cluster would read them: every setup
 * file is complete, the shared objects are the same in each, every
 * ServiceAccount gets exactly the rules its process uses (rbac_test.ts
 * checks them against a real API server), only what runs plugins in pod
 * namespaces is privileged, everything listens on loopback, the arguments are ones the
 * commands accept, and the DaemonSets have what a node component needs
 * (host network, every node, probes on the ports the processes listen on,
 * resources, the host paths).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseInstallArgs } from "../../install/options.ts";
import { parseRouteArgs } from "../../route/options.ts";
import { parseDaemonArgs } from "../../daemon/node_main.ts";
import { parseNriServeArgs } from "../../nri/options.ts";
import { DEFAULT_DAEMON_SOCKET } from "../../daemonclient/protocol.ts";
import { DEFAULT_META_CACHE_DIR } from "../../engine/config.ts";
import { LOCK_DIR } from "../../plugins/host_lock.ts";
import { DEFAULT_TUNING_DIR } from "../../plugins/tuning.ts";
import { DEFAULT_DATA_DIR } from "../../ipam/config.ts";
import { repoRoot } from "./helpers.ts";
import { ROLE_PORTS } from "../../pkg/operation_flags.ts";
import { roleOf } from "../ops/manifest_roles.ts";

const deployDir = join(repoRoot, "deploy");
export const SETUP_FILES = ["hydra-meta.yaml", "hydra-nri.yaml", "hydra-router.yaml"];

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** The YAML documents of a deploy/ file. */
export function loadDocs(name: string): Obj[] {
  const text = Deno.readTextFileSync(join(deployDir, name));
  const docs = parseAllDocuments(text);
  for (const d of docs) assert.deepEqual(d.errors, [], `${name}: ${d.errors.join("; ")}`);
  return docs.map((d) => d.toJSON()).filter((d) => d !== null);
}

function find(docs: Obj[], kind: string, name?: string): Obj {
  const doc = docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.ok(doc, `${kind} ${name ?? ""} present`);
  return doc;
}

function all(docs: Obj[], kind: string): Obj[] {
  return docs.filter((d) => d.kind === kind);
}

/** A rule as written: group, resource, verbs and names, sorted for comparison. */
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

const core = (resources: string[], verbs: string[], resourceNames?: string[]): Rule => ({
  apiGroups: [""],
  resources,
  verbs,
  ...(resourceNames ? { resourceNames } : {}),
});

/**
 * Every role, with exactly the rules its process uses (read from the code:
 * docs/reliability.md lists the calls behind each).
 */
const EXPECTED_RULES: Record<string, Rule[]> = {
  "Role/hydra-install": [core(["serviceaccounts/token"], ["create"], ["hydra-node"])],
  "ClusterRole/hydra-node": [
    core(["pods"], ["get"]),
    core(["pods/status"], ["patch"]),
    {
      apiGroups: ["k8s.cni.cncf.io"],
      resources: ["network-attachment-definitions"],
      verbs: ["get"],
    },
    { apiGroups: ["kubernetes-network.cni.cncf.io"], resources: ["networks"], verbs: ["get"] },
    core(["nodes"], ["get"]),
    core(["events"], ["create"]),
  ],
  "ClusterRole/hydra-daemon": [
    core(["pods"], ["get", "list", "watch"]),
    core(["pods/status"], ["patch"]),
    {
      apiGroups: ["k8s.cni.cncf.io"],
      resources: ["network-attachment-definitions"],
      verbs: ["get", "list", "watch"],
    },
    { apiGroups: ["kubernetes-network.cni.cncf.io"], resources: ["networks"], verbs: ["get"] },
    core(["nodes"], ["get", "list", "watch"]),
    core(["events"], ["create"]),
  ],
  "ClusterRole/hydra-nri": [
    // get as the meta-CNI does; list and watch for the watch caches its attaches read (the
    // node's pods, every NAD, its Node), as the daemon's.
    core(["pods"], ["get", "list", "watch"]),
    core(["pods/status"], ["patch"]),
    {
      apiGroups: ["k8s.cni.cncf.io"],
      resources: ["network-attachment-definitions"],
      verbs: ["get", "list", "watch"],
    },
    { apiGroups: ["kubernetes-network.cni.cncf.io"], resources: ["networks"], verbs: ["get"] },
    core(["nodes"], ["get", "list", "watch"]),
    core(["events"], ["create"]),
  ],
  "ClusterRole/hydra-policy": [
    core(["pods", "namespaces"], ["list", "watch"]),
    {
      apiGroups: ["k8s.cni.cncf.io"],
      resources: ["multi-networkpolicies", "network-attachment-definitions"],
      verbs: ["list", "watch"],
    },
    core(["events"], ["create"]),
  ],
  "ClusterRole/hydra-router": [core(["nodes"], ["list", "watch"])],
  "Role/hydra-router-events": [core(["events"], ["create"])],
};

/** Which ServiceAccount gets which roles, per setup file. */
const EXPECTED_GRANTS: Record<string, Record<string, string[]>> = {
  "hydra-meta.yaml": {
    "hydra-install": ["Role/hydra-install"],
    "hydra-node": ["ClusterRole/hydra-node"],
    "hydra-daemon": ["ClusterRole/hydra-daemon"],
    "hydra-policy": ["ClusterRole/hydra-policy"],
  },
  "hydra-nri.yaml": {
    "hydra-install": ["Role/hydra-install"],
    "hydra-node": ["ClusterRole/hydra-node"],
    "hydra-nri": ["ClusterRole/hydra-nri"],
    "hydra-policy": ["ClusterRole/hydra-policy"],
  },
  "hydra-router.yaml": {
    "hydra-router": ["ClusterRole/hydra-router", "Role/hydra-router-events"],
  },
};

const pool = (resources: string[], verbs: string[]): Rule => ({
  apiGroups: ["hydra.clusternet.io"],
  resources,
  verbs,
});

/** hydra-ipam.yaml: the node side's role and the controller's, each with the calls it makes. */
const IPAM_RULES: Record<string, Rule[]> = {
  "ClusterRole/hydra-pool": [
    pool(["addresspools"], ["get", "list", "create"]),
    pool(["addressblocks"], ["get", "list", "create", "update"]),
    { apiGroups: ["whereabouts.cni.cncf.io"], resources: ["ippools"], verbs: ["get", "list"] },
  ],
  "ClusterRole/hydra-ipam-controller": [
    core(["pods", "nodes"], ["get", "list", "watch"]),
    { apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["get", "list", "watch"] },
    pool(["addressblocks"], ["get", "list", "watch", "update", "delete"]),
    pool(["addresspools"], ["get", "list", "watch"]),
    pool(["addresspools/status"], ["patch"]),
    { apiGroups: ["whereabouts.cni.cncf.io"], resources: ["ippools"], verbs: ["get", "list"] },
  ],
  "Role/hydra-ipam-controller": [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["hydra-ipam-controller"],
      verbs: ["get", "update"],
    },
  ],
};

/** ServiceAccount → the roles its bindings in `docs` grant it. */
function grants(docs: Obj[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const b of [...all(docs, "ClusterRoleBinding"), ...all(docs, "RoleBinding")]) {
    assert.equal(b.roleRef.apiGroup, "rbac.authorization.k8s.io");
    if (b.kind === "RoleBinding") assert.equal(b.roleRef.kind, "Role", b.metadata.name);
    const role = `${b.roleRef.kind}/${b.roleRef.name}`;
    find(docs, b.roleRef.kind, b.roleRef.name);
    for (const s of b.subjects) {
      assert.equal(s.kind, "ServiceAccount");
      assert.equal(s.namespace, "hydra-system");
      find(docs, "ServiceAccount", s.name);
      (out[s.name] ??= []).push(role);
    }
  }
  for (const roles of Object.values(out)) roles.sort();
  return out;
}

Deno.test("every setup file is complete and in dependency order", () => {
  for (const file of SETUP_FILES) {
    const docs = loadDocs(file);
    for (const d of docs) {
      assert.ok(d.apiVersion && d.kind && d.metadata?.name, `${file}: ${JSON.stringify(d)}`);
      assert.equal(d.metadata.labels?.["app.kubernetes.io/part-of"], "hydra", d.metadata.name);
    }
    const kinds = docs.map((d) => d.kind);
    // The namespace before anything namespaced; the DaemonSets last.
    assert.equal(kinds[0], "Namespace", file);
    const firstDs = kinds.indexOf("DaemonSet");
    assert.ok(firstDs > 0 && kinds.slice(firstDs).every((k) => k === "DaemonSet"), file);
    for (const ds of all(docs, "DaemonSet")) {
      find(docs, "ServiceAccount", ds.spec.template.spec.serviceAccountName);
    }
  }
});

Deno.test("RBAC: each ServiceAccount gets exactly the roles of its process, each role exactly the rules it uses", () => {
  for (const file of SETUP_FILES) {
    const docs = loadDocs(file);
    assert.deepEqual(grants(docs), EXPECTED_GRANTS[file], file);
    for (const role of [...all(docs, "ClusterRole"), ...all(docs, "Role")]) {
      const key = `${role.kind}/${role.metadata.name}`;
      assert.deepEqual(role.rules, EXPECTED_RULES[key], `${file}: ${key}`);
    }
  }
  // Nothing anywhere grants a wildcard, secrets, configmaps or a write to pods themselves.
  for (const rules of Object.values(EXPECTED_RULES)) {
    for (const r of rules) {
      for (const field of [r.apiGroups, r.resources, r.verbs]) assert.ok(!field.includes("*"));
      assert.ok(!r.resources.some((x) => ["secrets", "configmaps"].includes(x)));
      if (r.resources.includes("pods")) {
        assert.ok(r.verbs.every((v) => ["get", "list", "watch"].includes(v)));
      }
      assert.ok(!r.verbs.some((v) => ["update", "delete", "escalate", "bind"].includes(v)));
    }
  }
});

Deno.test("admission policies confine the node identities to their own node", () => {
  for (const file of ["hydra-meta.yaml", "hydra-nri.yaml"]) {
    const docs = loadDocs(file);
    const status = find(docs, "ValidatingAdmissionPolicy", "hydra-node-pod-status");
    assert.equal(status.apiVersion, "admissionregistration.k8s.io/v1");
    assert.equal(status.spec.failurePolicy, "Fail");
    assert.deepEqual(status.spec.matchConstraints.resourceRules, [{
      apiGroups: [""],
      apiVersions: ["v1"],
      operations: ["UPDATE"],
      resources: ["pods/status"],
    }]);
    const identities = status.spec.matchConditions[0].expression as string;
    for (const sa of ["hydra-node", "hydra-daemon", "hydra-nri"]) {
      assert.ok(identities.includes(`'system:serviceaccount:hydra-system:${sa}'`), sa);
    }
    assert.ok(status.spec.validations.every((v: Obj) => v.reason === "Forbidden"));
    const token = find(docs, "ValidatingAdmissionPolicy", "hydra-node-token");
    assert.deepEqual(token.spec.matchConstraints.resourceRules[0].resources, [
      "serviceaccounts/token",
    ]);
    for (const policy of [status, token]) {
      const binding = find(docs, "ValidatingAdmissionPolicyBinding", policy.metadata.name);
      assert.equal(binding.spec.policyName, policy.metadata.name);
      assert.deepEqual(binding.spec.validationActions, ["Deny"]);
    }
  }
});

Deno.test("the CRD is the same in the setup files and in deploy/crds", () => {
  const [crd] = loadDocs("crds/network-attachment-definition.yaml");
  assert.equal(crd.spec.group, "k8s.cni.cncf.io");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.deepEqual(crd.spec.names.shortNames, ["nad", "net-attach-def"]);
  assert.equal(crd.spec.names.kind, "NetworkAttachmentDefinition");
  const v1 = crd.spec.versions.find((v: Obj) => v.name === "v1");
  assert.ok(v1.served && v1.storage);
  assert.equal(v1.schema.openAPIV3Schema.properties.spec.properties.config.type, "string");
  for (const file of ["hydra-meta.yaml", "hydra-nri.yaml"]) {
    assert.deepEqual(find(loadDocs(file), "CustomResourceDefinition"), crd, file);
  }
  // The router reads no NetworkAttachmentDefinitions.
  assert.ok(!loadDocs("hydra-router.yaml").some((d) => d.kind === "CustomResourceDefinition"));
});

Deno.test("RBAC of hydra-ipam.yaml: the node identities that allocate get hydra-pool, the controller its own", () => {
  const ipam = loadDocs("hydra-ipam.yaml");
  // Its bindings name the node setups' ServiceAccounts, applied beside it.
  const accounts = all(loadDocs("hydra-meta.yaml"), "ServiceAccount");
  assert.deepEqual(grants([...ipam, ...accounts]), {
    "hydra-node": ["ClusterRole/hydra-pool"],
    "hydra-daemon": ["ClusterRole/hydra-pool"],
    "hydra-ipam-controller": ["ClusterRole/hydra-ipam-controller", "Role/hydra-ipam-controller"],
  });
  for (const role of [...all(ipam, "ClusterRole"), ...all(ipam, "Role")]) {
    const key = `${role.kind}/${role.metadata.name}`;
    assert.deepEqual(role.rules, IPAM_RULES[key], key);
  }
  for (const r of Object.values(IPAM_RULES).flat()) {
    assert.ok(!r.resources.some((x) => ["secrets", "configmaps", "events"].includes(x)));
    if (r.resources.some((x) => x === "pods" || x === "nodes")) {
      assert.ok(r.verbs.every((v) => ["get", "list", "watch"].includes(v)));
    }
  }
});

Deno.test("meta and NRI setups share namespace, identities, policies and installer; differ in the node agent", () => {
  const meta = loadDocs("hydra-meta.yaml");
  const nri = loadDocs("hydra-nri.yaml");
  const key = (d: Obj) => `${d.kind}/${d.metadata.name}`;
  const shared = meta.filter((d) => nri.some((n) => key(n) === key(d)));
  assert.deepEqual(shared.map(key).sort(), [
    "ClusterRole/hydra-node",
    "ClusterRole/hydra-policy",
    "ClusterRoleBinding/hydra-node",
    "ClusterRoleBinding/hydra-policy",
    "CustomResourceDefinition/multi-networkpolicies.k8s.cni.cncf.io",
    "CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io",
    "DaemonSet/hydra",
    "DaemonSet/hydra-policy",
    "Namespace/hydra-system",
    "Role/hydra-install",
    "RoleBinding/hydra-install",
    "ServiceAccount/hydra-install",
    "ServiceAccount/hydra-node",
    "ServiceAccount/hydra-policy",
    "ValidatingAdmissionPolicy/hydra-node-pod-status",
    "ValidatingAdmissionPolicy/hydra-node-token",
    "ValidatingAdmissionPolicyBinding/hydra-node-pod-status",
    "ValidatingAdmissionPolicyBinding/hydra-node-token",
  ]);
  for (const d of shared) {
    const other = nri.find((n) => key(n) === key(d))!;
    if (key(d) !== "DaemonSet/hydra") assert.deepEqual(other, d, key(d));
  }
  // The installer DaemonSet differs only in its mode (and meta's wait for the default conf and
  // its conf keys: daemonExec).
  const strip = (ds: Obj) => {
    const copy = structuredClone(ds);
    const c = copy.spec.template.spec.containers[0];
    c.args = c.args.filter((a: string) => !/^--(mode|default-conf-timeout|meta-json)=/.test(a));
    return copy;
  };
  assert.deepEqual(strip(find(nri, "DaemonSet", "hydra")), strip(find(meta, "DaemonSet", "hydra")));
  assert.ok(
    find(meta, "DaemonSet", "hydra-daemon") &&
      !nri.some((d) => key(d) === "DaemonSet/hydra-daemon"),
  );
  assert.ok(
    find(nri, "DaemonSet", "hydra-nri") && !meta.some((d) => key(d) === "DaemonSet/hydra-nri"),
  );
  const router = loadDocs("hydra-router.yaml");
  assert.deepEqual(find(router, "Namespace"), find(meta, "Namespace"));
  assert.ok(!router.some((d) => meta.some((m) => m.kind !== "Namespace" && key(m) === key(d))));
});

/** Every container of every setup file (the DRA driver's included), with where it is. */
function containers(): { file: string; ds: Obj; pod: Obj; c: Obj; where: string }[] {
  return [...SETUP_FILES, "hydra-dra.yaml"].flatMap((file) =>
    all(loadDocs(file), "DaemonSet").flatMap((ds) =>
      ds.spec.template.spec.containers.map((c: Obj) => ({
        file,
        ds,
        pod: ds.spec.template.spec,
        c,
        where: `${file}/${ds.metadata.name}/${c.name}`,
      }))
    )
  );
}

/** The health address argument of a container. */
function healthArg(c: Obj): string | undefined {
  return (c.args as string[]).find((a) => a.startsWith("--health-addr="));
}

Deno.test("DaemonSets: host network, every node, probes on the listening ports, resources", () => {
  const portsInUse = new Map<number, string>();
  for (const { file, ds, pod, c, where } of containers()) {
    assert.equal(pod.hostNetwork, true, file);
    assert.deepEqual(pod.tolerations, [{ operator: "Exists" }], file);
    assert.deepEqual(ds.spec.selector.matchLabels, {
      "app.kubernetes.io/name": ds.spec.template.metadata.labels["app.kubernetes.io/name"],
    });
    assert.match(c.image, /^ghcr\.io\/hydra-cni\/hydra:/, where);
    for (const kind of ["requests", "limits"]) {
      assert.ok(c.resources?.[kind]?.cpu && c.resources?.[kind]?.memory, `${where} ${kind}`);
    }
    // One flag name for every role, and each role on its port of the table.
    assert.ok(!(c.args ?? []).some((a: string) => a.startsWith("--listen")), `${where}: --listen`);
    const addr = healthArg(c);
    assert.ok(addr, `${where} serves health`);
    const port = Number(addr.split(":").at(-1));
    assert.equal(port, ROLE_PORTS[roleOf(c)], `${where}: the port of ${roleOf(c)}`);
    assert.equal(c.livenessProbe.httpGet.port, port, where);
    assert.equal(c.readinessProbe.httpGet.port, port, where);
    assert.equal(c.livenessProbe.httpGet.path, "/healthz");
    assert.equal(c.ports[0].containerPort, port);
    // Host network: ports of pods that may share a node must differ (the meta and NRI files
    // hold the same installer DaemonSet, one or the other).
    const self = `${ds.metadata.name}/${c.name}`;
    const owner = portsInUse.get(port);
    assert.ok(owner === undefined || owner === self, `${where} vs ${owner}`);
    portsInUse.set(port, self);
    for (const m of c.volumeMounts ?? []) {
      const vol = pod.volumes.find((v: Obj) => v.name === m.name);
      assert.ok(vol, `${where}: volume ${m.name}`);
      // Host paths at the same path inside, so paths written into files hold on the host.
      if (vol.hostPath) assert.equal(m.mountPath, vol.hostPath.path, `${where}: ${m.name}`);
    }
  }
});

Deno.test("health and metrics listen on loopback only, and the kubelet probes them there", () => {
  for (const { c, where } of containers()) {
    const value = healthArg(c)!.split("=")[1];
    assert.match(value, /^127\.0\.0\.1:\d+$/, `${where} listens on ${value}`);
    for (const probe of [c.livenessProbe, c.readinessProbe]) {
      assert.equal(probe.httpGet.host, "127.0.0.1", where);
    }
  }
});

Deno.test("only what enters pod namespaces runs privileged; every other container drops every capability", () => {
  const privileged = containers().filter(({ c }) => c.securityContext?.privileged === true);
  // The NRI plugin and, under daemonExec, the node daemon run plugins in pod namespaces (setns,
  // links, sysctls); the policy agent writes nftables tables in them.
  assert.deepEqual(privileged.map((x) => x.where), [
    "hydra-meta.yaml/hydra-daemon/daemon",
    "hydra-meta.yaml/hydra-policy/policy",
    "hydra-nri.yaml/hydra-nri/nri",
    "hydra-nri.yaml/hydra-policy/policy",
  ]);
  const meta = find(loadDocs("hydra-meta.yaml"), "DaemonSet", "hydra").spec.template.spec;
  const installArgs: string[] = meta.containers[0].args;
  // The daemon is privileged because, and only because, the installer's conf hands it whole
  // invocations (daemonExec, the fast path deploy/ defaults to).
  assert.ok(
    installArgs.some((a) => a.startsWith("--meta-json=") && a.includes('"daemonExec":true')),
    "the privileged daemon is there for daemonExec",
  );
  for (const { c, where } of containers()) {
    if (c.securityContext?.privileged) continue;
    const sc = c.securityContext;
    assert.equal(sc.allowPrivilegeEscalation, false, where);
    assert.equal(sc.readOnlyRootFilesystem, true, where);
    assert.deepEqual(sc.capabilities.drop, ["ALL"], where);
    // The router (routes, vxlan devices, FDB and neighbour entries) and the DRA driver (links
    // and addresses of the NICs it hands out) add one.
    const added = sc.capabilities.add ?? [];
    const needs = where.startsWith("hydra-router.yaml") || where.startsWith("hydra-dra.yaml");
    assert.deepEqual(added, needs ? ["NET_ADMIN"] : [], where);
  }
});

/**
 * An installer container's arguments as `hydra install` reads them in its pod: the node's name
 * from the downward API, the namespace from the pod's ServiceAccount files (given here).
 */
function installOptions(args: string[]) {
  return parseInstallArgs([
    ...args,
    "--node-service-account=hydra-system/hydra-node",
    "--node-name=node-1",
  ]);
}

Deno.test("installer containers pass arguments hydra install accepts, in the right mode, minting the node token", () => {
  const expected: Record<string, string | undefined> = {
    "hydra-meta.yaml": "meta",
    "hydra-nri.yaml": "nri",
    "hydra-router.yaml": undefined,
  };
  for (const file of SETUP_FILES) {
    const install = containers().find((x) => x.file === file && x.c.name === "install");
    if (expected[file] === undefined) {
      assert.equal(install, undefined, `${file} installs nothing on the host`);
      continue;
    }
    const { c, pod } = install!;
    assert.equal(pod.serviceAccountName, "hydra-install");
    assert.equal(c.command, undefined, "the image's entrypoint is hydra install");
    const nodeName = c.env.find((e: Obj) => e.name === "NODE_NAME");
    assert.equal(nodeName?.valueFrom.fieldRef.fieldPath, "spec.nodeName");
    const opts = installOptions(c.args);
    assert.equal(opts.mode, expected[file]);
    assert.equal(opts.once, false, "keeps running to renew the node token");
    assert.ok(c.args.includes("--node-service-account=hydra-node"));
    assert.deepEqual(opts.nodeToken, {
      namespace: "hydra-system",
      name: "hydra-node",
      nodeName: "node-1",
      ttlSeconds: 86400,
    });
    const mounts = c.volumeMounts.map((m: Obj) => m.mountPath);
    assert.ok(mounts.includes(opts.binDir) && mounts.includes(opts.confDir), file);
  }
});

Deno.test("the router container passes arguments hydra route sync accepts", () => {
  const { c: route, pod } = containers().find((x) => x.file === "hydra-router.yaml")!;
  assert.equal(pod.serviceAccountName, "hydra-router");
  assert.deepEqual(route.command, ["/usr/local/bin/hydra"]);
  assert.deepEqual(route.args.slice(0, 2), ["route", "sync"]);
  const opts = parseRouteArgs(route.args.slice(2));
  assert.equal(opts.once, false);
  assert.equal(opts.kubeconfig, undefined, "Node objects through the in-cluster ServiceAccount");
  assert.deepEqual(opts.healthAddr, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: route.livenessProbe.httpGet.port,
  });
  // The router finds its own node by name.
  assert.equal(
    route.env.find((e: Obj) => e.name === "NODE_NAME")?.valueFrom.fieldRef.fieldPath,
    "spec.nodeName",
  );
});

Deno.test("the NRI plugin container passes arguments hydra nri serve accepts", () => {
  const { c, pod } = containers().find((x) => x.file === "hydra-nri.yaml" && x.c.name === "nri")!;
  assert.equal(pod.serviceAccountName, "hydra-nri");
  assert.deepEqual(c.args.slice(0, 2), ["nri", "serve"]);
  const opts = parseNriServeArgs(c.args.slice(2));
  assert.equal(opts.inCluster, true);
  assert.deepEqual(opts.healthAddr, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: c.livenessProbe.httpGet.port,
  });
});

Deno.test("the meta setup's daemon: arguments hydra daemon accepts, its socket where the meta-CNI looks, the host's paths", () => {
  const { c: daemon, pod } = containers().find((x) => x.c.name === "daemon")!;
  assert.equal(pod.serviceAccountName, "hydra-daemon");
  assert.deepEqual(daemon.command, ["/usr/local/bin/hydra"]);
  assert.equal(daemon.args[0], "daemon");
  const opts = parseDaemonArgs(daemon.args.slice(1));
  assert.equal(opts.socket, DEFAULT_DAEMON_SOCKET, "the meta-CNI conf's default daemonSocket");
  assert.equal(opts.kubeconfig, undefined, "the in-cluster ServiceAccount");
  assert.deepEqual(opts.listen, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: daemon.livenessProbe.httpGet.port,
  });
  assert.equal(daemon.readinessProbe.httpGet.path, "/readyz");
  assert.equal(
    daemon.env.find((e: Obj) => e.name === "NODE_NAME")?.valueFrom.fieldRef.fieldPath,
    "spec.nodeName",
  );
  const mounts: Obj[] = daemon.volumeMounts;
  const mounted = (path: string, writable = true) =>
    mounts.some((m) =>
      (path === m.mountPath || path.startsWith(`${m.mountPath}/`)) && (!writable || !m.readOnly)
    );
  const install = installOptions(
    containers().find((x) => x.file === "hydra-meta.yaml" && x.c.name === "install")!.c.args,
  );
  for (const dir of [install.binDir, install.confDir]) {
    assert.ok(mounted(dir, false), `${dir} is mounted`);
  }
  // What a daemonExec run touches is mounted already: turning it on changes only privileges.
  for (
    const dir of [
      opts.socket.slice(0, opts.socket.lastIndexOf("/")),
      opts.spoolDir,
      DEFAULT_META_CACHE_DIR,
      DEFAULT_DATA_DIR,
      LOCK_DIR,
      DEFAULT_TUNING_DIR,
    ]
  ) {
    assert.ok(mounted(dir), `${dir} is mounted writable`);
  }
  const netns = mounts.find((m) => m.mountPath === "/var/run/netns");
  assert.equal(netns?.mountPropagation, "HostToContainer", "namespaces made after the pod started");
});

Deno.test("hot plug: off in both setups until HYDRA_HOTPLUG says on; what it needs is there", () => {
  const containerEnv = (c: Obj) => {
    const vars = new Map<string, string>(
      (c.env as Obj[]).filter((e) => typeof e.value === "string").map((e) => [e.name, e.value]),
    );
    return { get: (k: string) => vars.get(k), with: (k: string, v: string) => vars.set(k, v) };
  };
  const rules = (name: string, file: Obj[]) => find(file, "ClusterRole", name).rules as Obj[];
  const grantsVerb = (rs: Obj[], resource: string, verb: string) =>
    rs.some((r) => r.resources.includes(resource) && r.verbs.includes(verb));
  // The meta setup's daemon.
  const meta = loadDocs("hydra-meta.yaml");
  const daemon = find(meta, "DaemonSet", "hydra-daemon").spec.template.spec.containers.find((
    c: Obj,
  ) => c.name === "daemon");
  const env = containerEnv(daemon);
  const asEnv = env as unknown as Deno.Env;
  assert.equal(parseDaemonArgs(daemon.args.slice(1), asEnv).hotplug, false);
  env.with("HYDRA_HOTPLUG", "on");
  const on = parseDaemonArgs(daemon.args.slice(1), asEnv);
  assert.equal(on.hotplug, true);
  assert.equal(on.cacheDir, DEFAULT_META_CACHE_DIR, "the meta-CNI's records");
  const criDir = on.criSocket.slice(0, on.criSocket.lastIndexOf("/"));
  assert.ok(
    (daemon.volumeMounts as Obj[]).some((m) => m.mountPath === criDir && !m.readOnly),
    `${criDir} (the CRI socket) is mounted`,
  );
  // Its watch of pods, Events and pods/status: all in the daemon's own role.
  for (
    const [resource, verb] of [["pods", "watch"], ["events", "create"], ["pods/status", "patch"]]
  ) {
    assert.ok(grantsVerb(rules("hydra-daemon", meta), resource, verb), `${resource} ${verb}`);
  }
  // The NRI plugin: the same switch, and its role has the watch of the node's pods.
  const nriDocs = loadDocs("hydra-nri.yaml");
  const nri = find(nriDocs, "DaemonSet", "hydra-nri").spec.template.spec.containers.find((
    c: Obj,
  ) => c.name === "nri");
  assert.equal(containerEnv(nri).get("HYDRA_HOTPLUG"), "off");
  assert.ok(!nri.args.some((a: string) => a.startsWith("--hotplug")), "the env decides");
  assert.ok(nri.env.some((e: Obj) => e.name === "NODE_NAME"));
  for (
    const [resource, verb] of [["pods", "watch"], ["events", "create"], ["pods/status", "patch"]]
  ) {
    assert.ok(grantsVerb(rules("hydra-nri", nriDocs), resource, verb), `${resource} ${verb}`);
  }
  assert.equal(find(nriDocs, "ClusterRoleBinding", "hydra-nri").roleRef.name, "hydra-nri");
});
