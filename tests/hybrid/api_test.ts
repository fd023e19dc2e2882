/**
 * The hybrid router driven by the API alone: Network and Subnet objects
 * and Node objects in a real kube-apiserver, the real `hydra hybrid sync
 * --once` in each node's namespace (reaching the API server through a
 * relay to the host's loopback) with no networks file and no node list,
 * under a ServiceAccount that may only read what the router reads. The
 * refused subnet is not programmed; the accepted ones carry traffic on
 * their paths.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { startRelay } from "../route/relay.ts";
import { run } from "../helpers/netns.ts";
import {
  createHybridWorld,
  destroyHybridWorld,
  type HybridNode,
  hydraBin,
  pings,
  txPackets,
} from "./world.ts";

const crds = fileURLToPath(new URL("../../deploy/crds/hybrid-networks.yaml", import.meta.url));
const API = "/apis/hydra.clusternet.io/v1alpha1";

/** What the router may read: nodes, hybrid networks and subnets, the pool's blocks. */
async function routerKubeconfig(cp: ControlPlane): Promise<string> {
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    metadata: { name: "hydra-hybrid-router-test" },
    rules: [
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
      {
        apiGroups: ["hydra.clusternet.io"],
        resources: ["networks", "subnets", "addressblocks"],
        verbs: ["get", "list"],
      },
    ],
  });
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    metadata: { name: "hydra-hybrid-router-test" },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "hydra-hybrid-router-test",
    },
    subjects: [{ kind: "ServiceAccount", name: "hydra-hybrid", namespace: "hydra-system" }],
  });
  return await cp.mintServiceAccountKubeconfig("hydra-system", "hydra-hybrid");
}

function nodeObject(n: HybridNode) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: n.name,
      annotations: { "hydra.clusternet.io/hy.cidr": `${n.overlayBlock},${n.underlayBlock}` },
    },
    status: { addresses: [{ type: "InternalIP", address: n.address }] },
  };
}

Deno.test({
  name: "hybrid router from the API: objects and Node objects only, least privilege",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cp = await startControlPlane();
    const w = await createHybridWorld(2).catch(async (err) => {
      await cp.stop();
      throw err;
    });
    const port = Number(new URL(cp.server).port);
    const relays = w.nodes.map((n) => startRelay(n.ns.path, port));
    try {
      await cp.kubectl("apply", "-f", crds);
      const create = async (path: string, body: unknown) => {
        for (let i = 0;; i++) {
          const res = await cp.api.request("POST", path, body);
          if (res.status < 300) return;
          // The CRDs take a moment to be served.
          if (res.status !== 404 || i > 100) {
            throw new Error(`${path}: ${JSON.stringify(res.body)}`);
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      const subnet = (name: string, spec: Record<string, unknown>) => ({
        apiVersion: "hydra.clusternet.io/v1alpha1",
        kind: "Subnet",
        metadata: { name },
        spec: { network: "hy", ...spec },
      });
      await create(`${API}/networks`, {
        apiVersion: "hydra.clusternet.io/v1alpha1",
        kind: "Network",
        metadata: { name: "hy" },
        spec: {
          mode: "hybrid",
          vni: 7000,
          uplink: "br-fab",
          device: "hy-hy",
          protocol: 210,
          mtu: 1450,
        },
      });
      await create(
        `${API}/subnets`,
        subnet("ov", { kind: "overlay", cidr: "10.250.0.0/16", blockSize: 24 }),
      );
      await create(
        `${API}/subnets`,
        subnet("fab", {
          kind: "underlay",
          cidr: "192.168.50.0/24",
          gateway: "192.168.50.1",
          start: "192.168.50.64",
          end: "192.168.50.191",
          blockSize: 28,
        }),
      );
      await new Promise((r) => setTimeout(r, 1100)); // younger than "ov": refused
      await create(`${API}/subnets`, subnet("clash", { kind: "overlay", cidr: "10.250.128.0/17" }));
      for (const n of w.nodes) await create("/api/v1/nodes", nodeObject(n));

      const kubeconfig = await routerKubeconfig(cp);
      for (const n of w.nodes) {
        const out = await run(
          "ip",
          "netns",
          "exec",
          n.ns.name,
          hydraBin,
          "hybrid",
          "sync",
          "--once",
          "--kubeconfig",
          kubeconfig,
          "--node-name",
          n.name,
          "--log-file",
          `${w.dir}/${n.name}.log`,
        );
        const s = JSON.parse(out);
        assert.equal(s.ok, true, out);
        assert.deepEqual(
          s.networks.map((
            x: { network: string; nodesSynced: number },
          ) => [x.network, x.nodesSynced]),
          [
            ["hy", 1],
          ],
        );
      }
      const [n1, n2] = w.nodes;
      const rules = await run("ip", "-n", n1.ns.name, "rule");
      assert.match(rules, /from 10\.250\.0\.0\/16 lookup 210/);
      assert.doesNotMatch(rules, /10\.250\.128\.0\/17/, "the refused subnet is not programmed");

      const [ov1] = n1.pods;
      const [, ul2] = n2.pods;
      const before = [await txPackets(n1.ns, "hy-hy"), await txPackets(n2.ns, "hy-hy")];
      assert.ok(await pings(ov1.ns, ul2.ip), "overlay on node1 → underlay on node2");
      assert.ok(
        await txPackets(n1.ns, "hy-hy") > before[0] && await txPackets(n2.ns, "hy-hy") > before[1],
      );
      assert.ok(await pings(ul2.ns, n1.pods[1].ip), "underlay ↔ underlay on the fabric");
    } finally {
      for (const r of relays) await r.stop();
      await destroyHybridWorld(w);
      await cp.stop();
    }
  },
});
