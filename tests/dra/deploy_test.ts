/**
 * deploy/hydra-dra.yaml as a cluster reads it:
 *
 * - statically: the DaemonSet's arguments are ones `hydra dra serve`
 *   accepts; the state folder is the one `hydra nri serve` in
 *   hydra-nri.yaml reads (its default) and both mount it from the host;
 * - against a real kube-apiserver: every object is accepted; the
 *   ServiceAccount may do what the driver does and no more; the admission
 *   policy keeps a node's driver to that node's ResourceSlices and to
 *   claims allocated on that node (the node comes from the token, here
 *   impersonated).
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { startControlPlane } from "../infra/cluster.ts";
import { repoRoot } from "../infra/peers.ts";
import { parseDraServeArgs } from "../../dra/options.ts";
import { parseNriServeArgs } from "../../nri/options.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

function docs(file: string): Obj[] {
  return parseAllDocuments(Deno.readTextFileSync(join(repoRoot, "deploy", file)))
    .map((d) => d.toJSON() as Obj).filter((d) => d);
}

function container(file: string, ds: string, name: string): Obj {
  const d = docs(file).find((x) => x.kind === "DaemonSet" && x.metadata.name === ds)!;
  return d.spec.template.spec.containers.find((c: Obj) => c.name === name);
}

function hostPathOf(file: string, ds: string, c: Obj, mountPath: string): string | undefined {
  const d = docs(file).find((x) => x.kind === "DaemonSet" && x.metadata.name === ds)!;
  const m = (c.volumeMounts as Obj[]).find((v) => v.mountPath === mountPath);
  const vol = (d.spec.template.spec.volumes as Obj[]).find((v) => v.name === m?.name);
  return vol?.hostPath?.path;
}

Deno.test("deploy/hydra-dra.yaml: arguments, and the state shared with nri serve", () => {
  const dra = container("hydra-dra.yaml", "hydra-dra", "dra");
  assert.deepEqual(dra.command, ["/usr/local/bin/hydra"]);
  assert.deepEqual(dra.args.slice(0, 2), ["dra", "serve"]);
  const opts = parseDraServeArgs(dra.args.slice(2));
  const nri = container("hydra-nri.yaml", "hydra-nri", "nri");
  const nriOpts = parseNriServeArgs(nri.args.slice(2));
  assert.equal(nriOpts.draStateDir, opts.stateDir, "nri serve reads where dra serve writes");
  assert.equal(hostPathOf("hydra-dra.yaml", "hydra-dra", dra, opts.stateDir), opts.stateDir);
  assert.equal(hostPathOf("hydra-nri.yaml", "hydra-nri", nri, opts.stateDir), opts.stateDir);
  for (const p of ["/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry"]) {
    assert.equal(hostPathOf("hydra-dra.yaml", "hydra-dra", dra, p), p);
  }
  assert.equal(
    hostPathOf("hydra-nri.yaml", "hydra-nri", nri, "/var/lib/kubelet/pod-resources"),
    "/var/lib/kubelet/pod-resources",
  );
  const port = Number(opts.healthAddr?.transport === "tcp" ? opts.healthAddr.port : 0);
  assert.equal(dra.readinessProbe.httpGet.port, port);
  assert.equal(dra.livenessProbe.httpGet.port, port);
});

Deno.test("deploy/hydra-dra.yaml against a real kube-apiserver: accepted, least privilege, own node only", async () => {
  const cp = await startControlPlane();
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(cp.caPath)],
    cert: await Deno.readTextFile(cp.adminCertPath),
    key: await Deno.readTextFile(cp.adminKeyPath),
  });
  try {
    await cp.kubectl("create", "namespace", "hydra-system");
    for (const d of docs("hydra-dra.yaml")) {
      const dry = d.kind === "DaemonSet" ? ["--dry-run=server"] : [];
      const file = join(cp.dir, `${d.kind}-${d.metadata.name}.json`);
      await Deno.writeTextFile(file, JSON.stringify(d));
      await cp.kubectl("create", "-f", file, ...dry);
    }
    const sa = "system:serviceaccount:hydra-system:hydra-dra";
    const can = async (verb: string, resource: string, extra: string[] = []) =>
      (await cp.kubectl("auth", "can-i", verb, resource, `--as=${sa}`, ...extra).catch(() => "no"))
        .trim() === "yes";
    for (
      const [verb, res] of [
        ["create", "resourceslices.resource.k8s.io"],
        ["delete", "resourceslices.resource.k8s.io"],
        ["get", "resourceclaims.resource.k8s.io"],
        ["patch", "resourceclaims.resource.k8s.io/status"],
        ["patch", "pods/status"],
        ["create", "events"],
        ["get", "network-attachment-definitions.k8s.cni.cncf.io"],
      ]
    ) {
      const [r, sub] = res.split("/");
      assert.ok(
        await can(verb, r, sub ? [`--subresource=${sub}`, "-n", "default"] : ["-n", "default"]),
        `${verb} ${res}`,
      );
    }
    for (
      const [verb, res] of [
        ["update", "resourceclaims.resource.k8s.io"],
        ["delete", "resourceclaims.resource.k8s.io"],
        ["create", "deviceclasses.resource.k8s.io"],
        ["get", "secrets"],
        ["update", "pods"],
        ["list", "pods"],
      ]
    ) {
      assert.ok(!(await can(verb, res, ["-n", "default"])), `not ${verb} ${res}`);
    }

    // The admission policy, with the node the token would name.
    const as = async (node: string, method: string, path: string, body: unknown) => {
      const res = await fetch(cp.server + path, {
        method,
        client,
        headers: {
          "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json",
          "Impersonate-User": sa,
          "Impersonate-Group": "system:serviceaccounts",
          "Impersonate-Extra-authentication.kubernetes.io%2Fnode-name": node,
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    };
    const slice = (node: string, name: string) => ({
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceSlice",
      metadata: { name },
      spec: {
        driver: "hydra.clusternet.io",
        nodeName: node,
        pool: { name: node, generation: 1, resourceSliceCount: 1 },
        devices: [],
      },
    });
    const ok = await as(
      "node-a",
      "POST",
      "/apis/resource.k8s.io/v1/resourceslices",
      slice("node-a", "node-a-hydra-0"),
    );
    assert.equal(ok.status, 201, ok.text);
    const other = await as(
      "node-a",
      "POST",
      "/apis/resource.k8s.io/v1/resourceslices",
      slice("node-b", "node-b-hydra-0"),
    );
    assert.equal(other.status, 422, other.text);
    assert.match(other.text, /only write hydra's ResourceSlices of its own node/);

    await cp.kubectl("create", "namespace", "dra-app");
    for (const node of ["node-a", "node-b"]) {
      await cp.api.must("POST", "/apis/resource.k8s.io/v1/namespaces/dra-app/resourceclaims", {
        apiVersion: "resource.k8s.io/v1",
        kind: "ResourceClaim",
        metadata: { name: `on-${node}` },
        spec: {
          devices: { requests: [{ name: "nic", exactly: { deviceClassName: "hydra-nic" } }] },
        },
      });
      const claim = await cp.api.must(
        "GET",
        `/apis/resource.k8s.io/v1/namespaces/dra-app/resourceclaims/on-${node}`,
      ) as Obj;
      claim.status = {
        allocation: {
          devices: {
            results: [{
              request: "nic",
              driver: "hydra.clusternet.io",
              pool: node,
              device: "nic-eth1",
            }],
          },
          nodeSelector: {
            nodeSelectorTerms: [{
              matchFields: [{ key: "metadata.name", operator: "In", values: [node] }],
            }],
          },
        },
      };
      await cp.api.must(
        "PUT",
        `/apis/resource.k8s.io/v1/namespaces/dra-app/resourceclaims/on-${node}/status`,
        claim,
      );
    }
    const status = {
      status: {
        devices: [{
          driver: "hydra.clusternet.io",
          pool: "node-a",
          device: "nic-eth1",
          networkData: { interfaceName: "data0" },
        }],
      },
    };
    const mine = await as(
      "node-a",
      "PATCH",
      "/apis/resource.k8s.io/v1/namespaces/dra-app/resourceclaims/on-node-a/status",
      status,
    );
    assert.equal(mine.status, 200, mine.text);
    const theirs = await as(
      "node-a",
      "PATCH",
      "/apis/resource.k8s.io/v1/namespaces/dra-app/resourceclaims/on-node-b/status",
      {
        status: { devices: [{ ...status.status.devices[0], pool: "node-b" }] },
      },
    );
    assert.equal(theirs.status, 422, theirs.text);
    assert.match(theirs.text, /only write the status of claims allocated on its own node/);
  } finally {
    client.close();
    await cp.stop();
  }
});
