/**
 * deploy/hydra-ipam.yaml against a real kube-apiserver: it passes
 * server-side dry-run; its CRDs are deploy/crds/address-pools.yaml; its
 * roles grant the node side and the controller what they use and nothing
 * more (`kubectl auth can-i` as the ServiceAccounts); and both roles work:
 * `hydra daemon` with the node account allocates, `hydra ipam controller`
 * with its own account leads and reclaims.
 *
 * Needs the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseControllerArgs } from "../../ipam_controller/main.ts";
import { peerBin } from "../infra/peers.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { addr, eventually, startPoolWorld } from "./harness.ts";

const DEPLOY = join(REPO_ROOT, "deploy");
const NS = "hydra-system";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

function docs(file: string): Obj[] {
  return parseAllDocuments(Deno.readTextFileSync(join(DEPLOY, file))).map((d) => d.toJSON())
    .filter((d) => d !== null);
}

async function kubectl(kubeconfig: string, ...args: string[]) {
  const out = await new Deno.Command(peerBin("kubectl"), {
    args: [`--kubeconfig=${kubeconfig}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deploy/hydra-ipam.yaml: its files agree, and the controller's arguments parse", () => {
  const all = docs("hydra-ipam.yaml");
  const crds = docs("crds/address-pools.yaml");
  assert.deepEqual(all.filter((d) => d.kind === "CustomResourceDefinition"), crds);
  assert.deepEqual(crds.map((c) => c.spec.group), ["hydra.clusternet.io", "hydra.clusternet.io"]);
  assert.equal(all[0].kind, "Namespace");
  const dep = all[all.length - 1];
  assert.equal(dep.kind, "Deployment");
  const c = dep.spec.template.spec.containers[0];
  assert.deepEqual(c.args.slice(0, 2), ["ipam", "controller"]);
  const opts = parseControllerArgs(
    c.args.slice(2),
    { get: () => undefined } as unknown as typeof Deno.env,
  );
  assert.equal(opts.listen?.transport, "tcp");
  assert.equal(c.livenessProbe.httpGet.port, 9475);
  assert.equal(dep.spec.template.spec.serviceAccountName, "hydra-ipam-controller");
});

Deno.test("deploy/: every role listens on a port of its own", () => {
  // One workload may appear in two files (hydra-meta.yaml and hydra-nri.yaml describe the same
  // DaemonSet in two modes); the containers of different workloads can share a node.
  const owners = new Map<number, Set<string>>();
  for (const e of Deno.readDirSync(DEPLOY)) {
    if (!e.isFile || !e.name.endsWith(".yaml")) continue;
    for (const d of docs(e.name)) {
      if (d.kind !== "DaemonSet" && d.kind !== "Deployment") continue;
      for (const c of d.spec.template.spec.containers) {
        for (const p of c.ports ?? []) {
          const who = `${d.metadata.namespace}/${d.metadata.name}/${c.name}`;
          owners.set(p.containerPort, (owners.get(p.containerPort) ?? new Set()).add(who));
        }
      }
    }
  }
  const shared = [...owners].filter(([, who]) => who.size > 1).map(([port, who]) =>
    `${port}: ${[...who].join(", ")}`
  );
  assert.deepEqual(shared, []);
  assert.deepEqual([...owners.get(9475)!], ["hydra-system/hydra-ipam-controller/controller"]);
});

Deno.test("deploy/hydra-ipam.yaml against a real kube-apiserver: dry-run, least privilege, working roles", async (t) => {
  const w = await startPoolWorld();
  try {
    const admin = w.kubeconfig;
    await t.step("server-side dry-run passes and creates nothing", async () => {
      await kubectl(admin, "create", "namespace", NS);
      const res = await kubectl(
        admin,
        "apply",
        "--dry-run=server",
        "-f",
        join(DEPLOY, "hydra-ipam.yaml"),
      );
      assert.equal(res.code, 0, res.stderr);
      const roles = await kubectl(admin, "get", "clusterrole", "hydra-ipam-controller");
      assert.notEqual(roles.code, 0, "a dry run leaves nothing behind");
    });

    await kubectl(admin, "apply", "-f", join(DEPLOY, "hydra-meta.yaml"));
    const applied = await kubectl(admin, "apply", "-f", join(DEPLOY, "hydra-ipam.yaml"));
    assert.equal(applied.code, 0, applied.stderr);

    await t.step("each account may do what it uses, and nothing more", async () => {
      // A SubjectAccessReview, as `kubectl auth can-i` sends one, without its discovery of the
      // resource (whereabouts' CRD is not installed here).
      const can = async (sa: string, verb: string, target: string, ...flags: string[]) => {
        const slash = target.indexOf("/");
        const res = slash < 0 ? target : target.slice(0, slash);
        const dot = res.indexOf(".");
        const attrs: Record<string, string> = {
          verb,
          resource: dot < 0 ? res : res.slice(0, dot),
          group: dot < 0 ? "" : res.slice(dot + 1),
          ...(slash < 0 ? {} : { name: target.slice(slash + 1) }),
        };
        for (let i = 0; i < flags.length; i++) {
          if (flags[i] === "-n") attrs.namespace = flags[++i];
          if (flags[i].startsWith("--subresource=")) attrs.subresource = flags[i].split("=")[1];
        }
        const review = await w.client.create<{ status: { allowed: boolean } }>(
          "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user: `system:serviceaccount:${NS}:${sa}`,
              groups: [
                "system:serviceaccounts",
                `system:serviceaccounts:${NS}`,
                "system:authenticated",
              ],
              resourceAttributes: attrs,
            },
          },
        );
        return review.status.allowed;
      };
      const node: [string[], boolean][] = [
        [["create", "addressblocks.hydra.clusternet.io"], true],
        [["update", "addressblocks.hydra.clusternet.io"], true],
        [["list", "addressblocks.hydra.clusternet.io"], true],
        [["delete", "addressblocks.hydra.clusternet.io"], false],
        [["create", "addresspools.hydra.clusternet.io"], true],
        [["update", "addresspools.hydra.clusternet.io"], false],
        [["list", "ippools.whereabouts.cni.cncf.io"], true],
        [["update", "ippools.whereabouts.cni.cncf.io"], false],
        [["get", "secrets"], false],
      ];
      for (const [[verb, target, ...flags], want] of node) {
        assert.equal(await can("hydra", verb, target, ...flags), want, `hydra: ${verb} ${target}`);
      }
      const ctl: [string[], boolean][] = [
        [["watch", "pods"], true],
        [["delete", "pods"], false],
        [["update", "pods"], false],
        [["watch", "statefulsets.apps"], true],
        [["update", "addressblocks.hydra.clusternet.io"], true],
        [["delete", "addressblocks.hydra.clusternet.io"], true],
        [["create", "addressblocks.hydra.clusternet.io"], false],
        [["create", "addresspools.hydra.clusternet.io"], false],
        [["patch", "addresspools.hydra.clusternet.io", "--subresource=status"], true],
        [["update", "leases.coordination.k8s.io/hydra-ipam-controller", "-n", NS], true],
        [["update", "leases.coordination.k8s.io/other", "-n", NS], false],
        [["create", "leases.coordination.k8s.io", "-n", "default"], false],
        [["get", "secrets"], false],
        [["update", "nodes"], false],
      ];
      for (const [[verb, target, ...flags], want] of ctl) {
        const allowed = await can("hydra-ipam-controller", verb, target, ...flags);
        assert.equal(allowed, want, `controller: ${verb} ${target} ${flags.join(" ")}`);
      }
    });

    await t.step(
      "hydra daemon with the node account allocates; the controller with its own reclaims",
      async () => {
        const nodeKc = await w.cp.mintServiceAccountKubeconfig(NS, "hydra");
        const ctlKc = await w.cp.mintServiceAccountKubeconfig(NS, "hydra-ipam-controller");
        const d = await w.startDaemon("least-node", ["--kubeconfig", nodeKc]);
        const net = w.network();
        const conf = w.conf({ range: "10.72.0.0/24", network_name: net, daemonSocket: d.socket });
        const pod = await w.createPod("lp", { node: "least-node" });
        const out = await w.exec("ADD", conf, {
          containerId: "lp-1",
          pod: { namespace: w.ns, name: "lp", uid: pod.metadata.uid },
        });
        assert.equal(out.code, 0, out.stdout);
        const ip = addr(out.result!.ips![0].address);
        const c = await w.startController([
          "--kubeconfig",
          ctlKc,
          "--namespace",
          NS,
          "--grace",
          "0",
          "--interval",
          "3",
        ]);
        await w.deletePod("lp");
        await eventually(
          "the controller frees the deleted pod's address",
          async () => !(await w.allocations(net)).some((a) => a.ip === ip),
          30_000,
        );
        await eventually(
          "it wrote the pool's status",
          async () => (await w.pool(`${net}.10.72.0.0-24`))?.status?.free === 254,
        );
        const log = await Deno.readTextFile(c.logPath);
        assert.doesNotMatch(log, /forbidden/i);
      },
    );
  } finally {
    await w.close();
  }
});
