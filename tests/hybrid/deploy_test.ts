/**
 * deploy/hydra-hybrid.yaml: its CRDs and admission policy are those of
 * deploy/crds/hybrid-networks.yaml and deploy/hybrid-admission.yaml; its
 * workloads run the roles with the documented ports; against a real
 * kube-apiserver it passes server-side dry-run, each ServiceAccount may do
 * what its role uses and nothing more, and the controller with its own
 * account writes the objects' status.
 *
 * Needs the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { startControlPlane } from "../infra/cluster.ts";
import { hydraBin } from "./world.ts";
import { run } from "../helpers/netns.ts";

const NS = "hydra-system";
const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

function docs(file: string): Obj[] {
  return parseAllDocuments(Deno.readTextFileSync(deploy(file))).map((d) => d.toJSON())
    .filter((d) => d !== null);
}

Deno.test("deploy/hydra-hybrid.yaml: its files agree; sync on loopback :9477, controller on :9478", () => {
  const all = docs("hydra-hybrid.yaml");
  assert.equal(all[0].kind, "Namespace");
  assert.deepEqual(
    all.filter((d) => d.kind === "CustomResourceDefinition"),
    docs("crds/hybrid-networks.yaml"),
  );
  assert.deepEqual(
    all.filter((d) => d.kind.startsWith("ValidatingAdmissionPolicy")),
    docs("hybrid-admission.yaml"),
  );
  const ds = all.find((d) => d.kind === "DaemonSet")!;
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.serviceAccountName, "hydra-hybrid-sync");
  const [sync] = pod.containers;
  assert.deepEqual(sync.args, ["hybrid", "sync", "--health-addr=127.0.0.1:9477"]);
  assert.equal(sync.livenessProbe.httpGet.host, "127.0.0.1");
  assert.equal(sync.livenessProbe.httpGet.port, 9477);
  assert.deepEqual(sync.securityContext.capabilities, { drop: ["ALL"], add: ["NET_ADMIN"] });
  const dep = all.find((d) => d.kind === "Deployment")!;
  assert.equal(dep.spec.template.spec.serviceAccountName, "hydra-hybrid-controller");
  assert.equal(dep.spec.template.spec.hostNetwork, undefined);
  const [ctl] = dep.spec.template.spec.containers;
  assert.deepEqual(ctl.args, ["hybrid", "controller", "--health-addr=:9478"]);
  assert.equal(ctl.readinessProbe.httpGet.port, 9478);
  assert.deepEqual(ctl.securityContext.capabilities, { drop: ["ALL"] });
});

Deno.test({
  name: "deploy/hydra-hybrid.yaml against a real kube-apiserver: dry-run, least privilege, status",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cp = await startControlPlane();
    try {
      const file = deploy("hydra-hybrid.yaml");
      await t.step("server-side dry-run passes and creates nothing", async () => {
        await cp.createNamespace(NS);
        await cp.kubectl("apply", "--dry-run=server", "-f", file);
        await assert.rejects(cp.kubectl("get", "clusterrole", "hydra-hybrid-controller"));
      });
      await cp.kubectl("apply", "-f", file);
      await cp.kubectl("apply", "-f", deploy("crds/address-pools.yaml"));
      // New CRDs serve a moment after they are created.
      const end = Date.now() + 30_000;
      while (!(await cp.kubectl("get", "addressblocks,subnets").then(() => true, () => false))) {
        if (Date.now() > end) throw new Error("the CRDs are not served within 30 s");
        await new Promise((r) => setTimeout(r, 200));
      }

      await t.step("each account may do what it uses, and nothing more", async () => {
        const can = async (sa: string, verb: string, resource: string, sub?: string) => {
          const dot = resource.indexOf(".");
          const review = await cp.api.must(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
              apiVersion: "authorization.k8s.io/v1",
              kind: "SubjectAccessReview",
              spec: {
                user: `system:serviceaccount:${NS}:${sa}`,
                groups: ["system:serviceaccounts", `system:serviceaccounts:${NS}`],
                resourceAttributes: {
                  verb,
                  resource: dot < 0 ? resource : resource.slice(0, dot),
                  group: dot < 0 ? "" : resource.slice(dot + 1),
                  ...(sub ? { subresource: sub } : {}),
                },
              },
            },
          );
          return (review as { status: { allowed: boolean } }).status.allowed;
        };
        const G = "hydra.clusternet.io";
        const want: [string, string, string, string | undefined, boolean][] = [
          ["hydra-hybrid-sync", "watch", "nodes", undefined, true],
          ["hydra-hybrid-sync", "list", `networks.${G}`, undefined, true],
          ["hydra-hybrid-sync", "list", `subnets.${G}`, undefined, true],
          ["hydra-hybrid-sync", "list", `addressblocks.${G}`, undefined, true],
          ["hydra-hybrid-sync", "update", "nodes", undefined, false],
          ["hydra-hybrid-sync", "patch", `subnets.${G}`, "status", false],
          ["hydra-hybrid-sync", "list", "pods", undefined, false],
          ["hydra-hybrid-sync", "get", "secrets", undefined, false],
          ["hydra-node", "list", `subnets.${G}`, undefined, true],
          ["hydra-node", "list", `networks.${G}`, undefined, true],
          ["hydra-daemon", "list", `subnets.${G}`, undefined, true],
          ["hydra-node", "patch", `subnets.${G}`, "status", false],
          ["hydra-node", "list", `addressblocks.${G}`, undefined, false],
          ["hydra-hybrid-controller", "list", "pods", undefined, true],
          ["hydra-hybrid-controller", "list", `subnets.${G}`, undefined, true],
          ["hydra-hybrid-controller", "patch", `subnets.${G}`, "status", true],
          ["hydra-hybrid-controller", "patch", `networks.${G}`, "status", true],
          ["hydra-hybrid-controller", "update", `subnets.${G}`, undefined, false],
          ["hydra-hybrid-controller", "delete", `subnets.${G}`, undefined, false],
          ["hydra-hybrid-controller", "update", `addressblocks.${G}`, undefined, false],
          ["hydra-hybrid-controller", "patch", "pods", undefined, false],
          ["hydra-hybrid-controller", "get", "secrets", undefined, false],
        ];
        for (const [sa, verb, res, sub, allowed] of want) {
          assert.equal(
            await can(sa, verb, res, sub),
            allowed,
            `${sa}: ${verb} ${res} ${sub ?? ""}`,
          );
        }
      });

      await t.step("the controller with its own account writes the status", async () => {
        const apply = async (obj: Obj) => {
          const f = await Deno.makeTempFile({ dir: cp.dir, suffix: ".json" });
          await Deno.writeTextFile(f, JSON.stringify(obj));
          await cp.kubectl("apply", "-f", f);
        };
        await apply({
          apiVersion: `hydra.clusternet.io/v1alpha1`,
          kind: "Network",
          metadata: { name: "hy" },
          spec: { mode: "hybrid", vni: 7000, uplink: "br-fab" },
        });
        await apply({
          apiVersion: `hydra.clusternet.io/v1alpha1`,
          kind: "Subnet",
          metadata: { name: "ov" },
          spec: { network: "hy", kind: "overlay", cidr: "10.250.0.0/16" },
        });
        const kc = await cp.mintServiceAccountKubeconfig(NS, "hydra-hybrid-controller");
        await run(hydraBin, "hybrid", "controller", "--once", "--kubeconfig", kc);
        const ov = JSON.parse(await cp.kubectl("get", "subnet", "ov", "-o", "json"));
        assert.equal(ov.status.phase, "Ready");
        assert.equal(ov.status.total, 65534);
      });
    } finally {
      await cp.stop();
    }
  },
});
