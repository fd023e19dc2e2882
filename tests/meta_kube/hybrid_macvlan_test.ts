/**
 * A hybrid network whose underlay pods are macvlan devices, through the
 * normal attachment path: a `hydra-hybrid` NAD run by the meta-CNI in
 * Kubernetes mode against a real kube-apiserver (objects and RBAC as
 * deploy/hydra-hybrid.yaml installs them), and the real `hydra hybrid sync
 * --once` in the node's namespace keeping the node's shim. The underlay pod
 * gets a macvlan device (bridge mode) of the node's NIC; overlay and
 * underlay pods on the node reach each other both ways through the shim,
 * the underlay pod and the fabric reach each other directly, and DEL
 * removes the pod's device.
 *
 * Needs root and the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { addresses, links } from "../meta/harness.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../helpers/netns.ts";
import { hydraBin, pings } from "../hybrid/world.ts";
import { startKubeEnv } from "./harness.ts";
import type { Pod } from "../../kube/objects.ts";

const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));
const NODE_ADDRESS = "192.168.50.11";
const GATEWAY = "192.168.50.1";
const NETWORK = {
  mode: "hybrid",
  vni: 7000,
  uplink: "fab0",
  underlayAttachment: "macvlan",
  defaultKind: "overlay",
  mtu: 1450,
};
const SUBNETS = {
  ov: { kind: "overlay", cidr: "10.250.0.0/16", blockSize: 24 },
  fab: {
    kind: "underlay",
    cidr: "192.168.50.0/24",
    gateway: GATEWAY,
    start: "192.168.50.64",
    end: "192.168.50.191",
    blockSize: 28,
  },
};
const BLOCKS = "10.250.1.0/24,192.168.50.64/28";

Deno.test({
  name: "hydra-hybrid NAD with macvlan underlay pods: the node's shim carries overlay ↔ underlay",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await startKubeEnv();
    let fabric: TestNetns | undefined;
    try {
      await env.cp.kubectl("apply", "-f", deploy("hydra-hybrid.yaml"));
      const end = Date.now() + 30_000;
      while (!(await env.cp.kubectl("get", "subnets").then(() => true, () => false))) {
        if (Date.now() > end) throw new Error("the hybrid CRDs are not served within 30 s");
        await new Promise((r) => setTimeout(r, 200));
      }
      const apply = async (obj: unknown) => {
        const f = await Deno.makeTempFile({ dir: env.dir, suffix: ".json" });
        await Deno.writeTextFile(f, JSON.stringify(obj));
        await env.cp.kubectl("apply", "-f", f);
      };
      const api = "hydra.clusternet.io/v1alpha1";
      await apply({ apiVersion: api, kind: "Network", metadata: { name: "hy" }, spec: NETWORK });
      for (const [name, spec] of Object.entries(SUBNETS)) {
        await apply({
          apiVersion: api,
          kind: "Subnet",
          metadata: { name },
          spec: { network: "hy", ...spec },
        });
      }
      await env.cp.kubectl(
        "annotate",
        "node",
        env.nodeName,
        `hydra.clusternet.io/hy.cidr=${BLOCKS}`,
        `hydra.clusternet.io/hy.address=${NODE_ADDRESS}`,
      );

      // The node's NIC on a fabric whose gateway lives in a namespace of its own: no bridge.
      const ipn = (...a: string[]) => run("ip", "-n", env.node.name, ...a);
      fabric = await createNetns("hkm");
      await ipn("link", "add", "fab0", "type", "veth", "peer", "eth0", "netns", fabric.name);
      await ipn("addr", "add", `${NODE_ADDRESS}/24`, "dev", "fab0");
      await ipn("link", "set", "fab0", "up");
      await env.node.exec("sysctl", "-qw", "net.ipv4.ip_forward=1");
      await run("ip", "-n", fabric.name, "addr", "add", `${GATEWAY}/24`, "dev", "eth0");
      await run("ip", "-n", fabric.name, "link", "set", "eth0", "up");

      // The router of the node, from the same network as a file (the node list: this node).
      const config = `${env.dir}/hybrid.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          networks: [{
            name: "hy",
            ...NETWORK,
            mode: undefined,
            subnets: Object.entries(SUBNETS).map(([name, s]) => ({ name, ...s })),
          }],
        }),
      );
      const nodesFile = `${env.dir}/nodes.json`;
      await Deno.writeTextFile(
        nodesFile,
        JSON.stringify({
          nodes: [{
            name: env.nodeName,
            addresses: [NODE_ADDRESS],
            annotations: { "hydra.clusternet.io/hy.cidr": BLOCKS },
          }],
        }),
      );
      const sync = JSON.parse(
        await run(
          "ip",
          "netns",
          "exec",
          env.node.name,
          hydraBin,
          "hybrid",
          "sync",
          "--once",
          "--config",
          config,
          "--nodes-file",
          nodesFile,
          "--node-name",
          env.nodeName,
          "--log-file",
          `${env.dir}/router.log`,
        ),
      );
      assert.equal(sync.ok, true, JSON.stringify(sync));

      const cluster = env.bridgeNet("cluster", { isGateway: true });
      await env.nad("kube-system", "cluster", cluster.conf);
      await env.nad(env.ns, "hy", {
        cniVersion: "1.0.0",
        name: "hy",
        type: "hydra-hybrid",
        network: "hy",
        kubeconfig: env.kubeconfigNode,
        nodeName: env.nodeName,
        dataDir: `${env.dir}/hybrid`,
      });
      const conf = env.metaConf({
        clusterNetwork: "cluster",
        nadPathRoots: { state: [env.dir], read: [env.dir] },
      });
      const attach = async (name: string, annotations: Record<string, string>) => {
        const pod: Pod = await env.createPod(name, annotations);
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
        assert.equal(out.code, 0, out.stdout);
        const link = (await links(netns)).get("net1")!;
        return { pod, netns, link, ip: addresses(link)[0].split("/")[0] };
      };
      const ov = await attach("ov", { "k8s.v1.cni.cncf.io/networks": "hy" });
      const ul = await attach("ul", {
        "k8s.v1.cni.cncf.io/networks": "hy",
        "hybrid.hydra.clusternet.io/kind": "underlay",
      });
      assert.match(ov.ip, /^10\.250\.1\.\d+$/);
      assert.match(ul.ip, /^192\.168\.50\.(6[4-9]|7\d)$/);
      const kind = await ul.netns.ipJson<{ linkinfo?: { info_kind: string } }[]>(
        "-d",
        "link",
        "show",
        "net1",
      );
      assert.equal(kind[0].linkinfo?.info_kind, "macvlan", "the underlay pod is not on macvlan");

      assert.ok(await pings(ov.netns, ul.ip), "overlay → macvlan underlay (through the shim)");
      assert.ok(await pings(ul.netns, ov.ip), "macvlan underlay → overlay (through the shim)");
      assert.ok(await pings(ul.netns, GATEWAY), "underlay → the fabric's gateway");
      assert.ok(await pings(fabric, ul.ip), "the fabric → underlay pod");
      assert.ok(await pings(env.node, ul.ip), "the node → its macvlan pod");
      assert.ok(!(await pings(fabric, ov.ip)), "the fabric has no way to an overlay pod");

      for (const p of [ov, ul]) {
        const out = await env.cni("DEL", conf, { netns: p.netns, pod: p.pod.metadata });
        assert.equal(out.code, 0, out.stdout);
        assert.equal((await links(p.netns)).get("net1"), undefined);
      }
    } finally {
      if (fabric) await deleteNetns(fabric);
      await env.close();
    }
  },
});
