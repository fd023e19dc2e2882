/**
 * The manifests in deploy/, read as a cluster would read them: every setup
 * file is complete, the shared objects are the same in each, the installer's
 * arguments are ones `hydra install` accepts, and the DaemonSets have what
 * a node component needs (host network, every node, probes on the ports the
 * processes listen on, resources, the host paths).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseInstallArgs } from "../../install/options.ts";
import { parseRouteArgs } from "../../route/options.ts";
import { parseDaemonArgs } from "../../daemon/node_main.ts";
import { DEFAULT_DAEMON_SOCKET } from "../../daemonclient/protocol.ts";
import { DEFAULT_META_CACHE_DIR } from "../../engine/config.ts";
import { LOCK_DIR } from "../../plugins/host_lock.ts";
import { DEFAULT_TUNING_DIR } from "../../plugins/tuning.ts";
import { DEFAULT_DATA_DIR } from "../../ipam/config.ts";
import { repoRoot } from "./helpers.ts";

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

Deno.test("every setup file is complete and in dependency order", () => {
  for (const file of SETUP_FILES) {
    const docs = loadDocs(file);
    for (const d of docs) {
      assert.ok(d.apiVersion && d.kind && d.metadata?.name, `${file}: ${JSON.stringify(d)}`);
    }
    const kinds = docs.map((d) => d.kind);
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]) {
      assert.ok(kinds.includes(kind), `${file} has a ${kind}`);
    }
    // The namespace before anything namespaced; the DaemonSet last.
    assert.equal(kinds[0], "Namespace", file);
    assert.equal(kinds.at(-1), "DaemonSet", file);
    const sa = find(docs, "ServiceAccount");
    const ds = find(docs, "DaemonSet");
    const binding = find(docs, "ClusterRoleBinding");
    assert.equal(ds.spec.template.spec.serviceAccountName, sa.metadata.name);
    assert.deepEqual(binding.subjects, [{
      kind: "ServiceAccount",
      name: sa.metadata.name,
      namespace: sa.metadata.namespace,
    }]);
    assert.equal(binding.roleRef.name, find(docs, "ClusterRole").metadata.name);
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

Deno.test("meta and NRI setups share namespace, ServiceAccount and role; differ in the DaemonSet", () => {
  const meta = loadDocs("hydra-meta.yaml");
  const nri = loadDocs("hydra-nri.yaml");
  for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]) {
    assert.deepEqual(find(nri, kind), find(meta, kind), kind);
  }
  assert.equal(find(nri, "DaemonSet").metadata.name, find(meta, "DaemonSet").metadata.name);
  const router = loadDocs("hydra-router.yaml");
  assert.deepEqual(find(router, "Namespace"), find(meta, "Namespace"));
  assert.notEqual(find(router, "DaemonSet").metadata.name, find(meta, "DaemonSet").metadata.name);
});

Deno.test("DaemonSets: host network, every node, probes on the listening ports, resources", () => {
  const portsInUse = new Map<number, string>();
  for (const file of SETUP_FILES) {
    const ds = find(loadDocs(file), "DaemonSet");
    const pod = ds.spec.template.spec;
    assert.equal(pod.hostNetwork, true, file);
    assert.deepEqual(pod.tolerations, [{ operator: "Exists" }], file);
    assert.deepEqual(ds.spec.selector.matchLabels, {
      "app.kubernetes.io/name": ds.spec.template.metadata.labels["app.kubernetes.io/name"],
    });
    for (const c of pod.containers) {
      const where = `${file}/${c.name}`;
      assert.match(c.image, /^ghcr\.io\/hydra-cni\/hydra:/, where);
      for (const kind of ["requests", "limits"]) {
        assert.ok(c.resources?.[kind]?.cpu && c.resources?.[kind]?.memory, `${where} ${kind}`);
      }
      const args: string[] = c.args ?? [];
      // hydra daemon names its health address --listen; the others --health-addr.
      const addr = args.find((a) => a.startsWith("--health-addr=") || a.startsWith("--listen="));
      assert.ok(addr, `${where} serves health`);
      const port = Number(addr.split(":").at(-1));
      assert.equal(c.livenessProbe.httpGet.port, port, where);
      assert.equal(c.readinessProbe.httpGet.port, port, where);
      assert.equal(c.livenessProbe.httpGet.path, "/healthz");
      assert.equal(c.ports[0].containerPort, port);
      // Host network: ports of pods that may share a node must differ.
      const owner = portsInUse.get(port);
      assert.ok(owner === undefined || owner.split("/")[1] === c.name, `${where} vs ${owner}`);
      portsInUse.set(port, where);
      for (const m of c.volumeMounts ?? []) {
        const vol = pod.volumes.find((v: Obj) => v.name === m.name);
        assert.ok(vol, `${where}: volume ${m.name}`);
        // Host paths at the same path inside, so paths written into files hold on the host.
        if (vol.hostPath) assert.equal(m.mountPath, vol.hostPath.path, `${where}: ${m.name}`);
      }
    }
  }
});

Deno.test("installer containers pass arguments hydra install accepts, in the right mode", () => {
  const expected: Record<string, string | undefined> = {
    "hydra-meta.yaml": "meta",
    "hydra-nri.yaml": "nri",
    "hydra-router.yaml": undefined,
  };
  for (const file of SETUP_FILES) {
    const pod = find(loadDocs(file), "DaemonSet").spec.template.spec;
    const install = pod.containers.find((c: Obj) => c.name === "install");
    if (expected[file] === undefined) {
      assert.equal(install, undefined, `${file} installs nothing on the host`);
      continue;
    }
    assert.equal(install.command, undefined, "the image's entrypoint is hydra install");
    const opts = parseInstallArgs(install.args);
    assert.equal(opts.mode, expected[file]);
    assert.equal(opts.once, false, "keeps running to follow token rotation");
    const mounts = install.volumeMounts.map((m: Obj) => m.mountPath);
    assert.ok(mounts.includes(opts.binDir) && mounts.includes(opts.confDir), file);
  }
});

Deno.test("the router container passes arguments hydra route sync accepts", () => {
  const pod = find(loadDocs("hydra-router.yaml"), "DaemonSet").spec.template.spec;
  const [route] = pod.containers;
  assert.deepEqual(route.command, ["/usr/local/bin/hydra"]);
  assert.deepEqual(route.args.slice(0, 2), ["route", "sync"]);
  const opts = parseRouteArgs(route.args.slice(2));
  assert.equal(opts.once, false);
  assert.equal(opts.kubeconfig, undefined, "Node objects through the in-cluster ServiceAccount");
  assert.deepEqual(opts.healthAddr, {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: route.livenessProbe.httpGet.port,
  });
  // The router finds its own node by name.
  assert.equal(
    route.env.find((e: Obj) => e.name === "NODE_NAME")?.valueFrom.fieldRef.fieldPath,
    "spec.nodeName",
  );
});

Deno.test("the meta setup's daemon: arguments hydra daemon accepts, its socket where the meta-CNI looks, the host's paths", () => {
  const pod = find(loadDocs("hydra-meta.yaml"), "DaemonSet").spec.template.spec;
  const daemon = pod.containers.find((c: Obj) => c.name === "daemon");
  assert.ok(daemon, "hydra-meta.yaml runs hydra daemon");
  assert.deepEqual(daemon.command, ["/usr/local/bin/hydra"]);
  assert.equal(daemon.args[0], "daemon");
  const opts = parseDaemonArgs(daemon.args.slice(1));
  assert.equal(opts.socket, DEFAULT_DAEMON_SOCKET, "the meta-CNI conf's default daemonSocket");
  assert.equal(opts.kubeconfig, undefined, "the in-cluster ServiceAccount");
  assert.deepEqual(opts.listen, {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: daemon.livenessProbe.httpGet.port,
  });
  assert.equal(daemon.readinessProbe.httpGet.path, "/readyz");
  assert.equal(
    daemon.env.find((e: Obj) => e.name === "NODE_NAME")?.valueFrom.fieldRef.fieldPath,
    "spec.nodeName",
  );
  // Under daemonExec it does what the meta-CNI exec'd on the host does.
  assert.equal(daemon.securityContext.privileged, true);
  const mounts: Obj[] = daemon.volumeMounts;
  const mounted = (path: string, writable = true) =>
    mounts.some((m) =>
      (path === m.mountPath || path.startsWith(`${m.mountPath}/`)) && (!writable || !m.readOnly)
    );
  const install = parseInstallArgs(
    pod.containers.find((c: Obj) => c.name === "install").args,
  );
  for (const dir of [install.binDir, install.confDir]) {
    assert.ok(mounted(dir, false), `${dir} is mounted`);
  }
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

Deno.test("the daemon's extra role is only in the meta setup and adds list and watch of pods alone", () => {
  const meta = loadDocs("hydra-meta.yaml");
  const role = find(meta, "ClusterRole", "hydra-daemon");
  assert.deepEqual(role.rules, [{
    apiGroups: [""],
    resources: ["pods"],
    verbs: ["list", "watch"],
  }]);
  const binding = find(meta, "ClusterRoleBinding", "hydra-daemon");
  assert.equal(binding.roleRef.name, "hydra-daemon");
  assert.deepEqual(binding.subjects, find(meta, "ClusterRoleBinding", "hydra").subjects);
  for (const file of ["hydra-nri.yaml", "hydra-router.yaml"]) {
    assert.ok(!loadDocs(file).some((d) => d.metadata.name === "hydra-daemon"), file);
  }
});

Deno.test("hot plug: off in both setups until HYDRA_HOTPLUG says on; what it needs is there", () => {
  const containerEnv = (c: Obj) => {
    const vars = new Map<string, string>(
      (c.env as Obj[]).filter((e) => typeof e.value === "string").map((e) => [e.name, e.value]),
    );
    return { get: (k: string) => vars.get(k), with: (k: string, v: string) => vars.set(k, v) };
  };
  // The meta setup's daemon.
  const meta = loadDocs("hydra-meta.yaml");
  const daemon = find(meta, "DaemonSet").spec.template.spec.containers.find((c: Obj) =>
    c.name === "daemon"
  );
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
  // Its pods' list and watch come from the daemon's role; Events and pods/status from hydra's.
  const rules = (name: string, file: Obj[]) => find(file, "ClusterRole", name).rules as Obj[];
  const grants = (rs: Obj[], resource: string, verb: string) =>
    rs.some((r) => r.resources.includes(resource) && r.verbs.includes(verb));
  for (const [resource, verb] of [["events", "create"], ["pods/status", "patch"]]) {
    assert.ok(grants(rules("hydra", meta), resource, verb), `${resource} ${verb}`);
  }
  // The NRI plugin: the same switch, and a role of its own for the watch of the node's pods.
  const nriDocs = loadDocs("hydra-nri.yaml");
  const nri = find(nriDocs, "DaemonSet").spec.template.spec.containers.find((c: Obj) =>
    c.name === "nri"
  );
  assert.equal(containerEnv(nri).get("HYDRA_HOTPLUG"), "off");
  assert.ok(!nri.args.some((a: string) => a.startsWith("--hotplug")), "the env decides");
  assert.ok(nri.env.some((e: Obj) => e.name === "NODE_NAME"));
  assert.ok(grants(rules("hydra-nri", nriDocs), "pods", "watch"));
  assert.equal(find(nriDocs, "ClusterRoleBinding", "hydra-nri").roleRef.name, "hydra-nri");
});
