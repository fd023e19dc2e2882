/**
 * A hybrid network through the normal attachment path: NADs of type
 * `hydra-hybrid` run by the meta-CNI in Kubernetes mode against a real
 * kube-apiserver, the network's Network and Subnet objects as
 * deploy/hydra-hybrid.yaml installs them (RBAC included: the node
 * kubeconfig's own identity reads them), the node's blocks on its Node.
 * One pod is placed by the network's default (overlay), one by its pod
 * annotation (underlay), one by its NAD's request (underlay); overlay and
 * underlay pods reach each other through their node, the underlay pods
 * reach the fabric's gateway directly, and DEL undoes everything.
 *
 * Needs root and the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { addresses, links } from "../meta/harness.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../helpers/netns.ts";
import { pings } from "../hybrid/world.ts";
import { startKubeEnv } from "./harness.ts";
import type { Pod } from "../../kube/objects.ts";

const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));
const NODE_ADDRESS = "192.168.50.11";
const GATEWAY = "192.168.50.1";

async function net1(netns: TestNetns): Promise<string | undefined> {
  const link = (await links(netns)).get("net1");
  return link ? addresses(link)[0] : undefined;
}

Deno.test({
  name: "hydra-hybrid NADs: overlay by default, underlay by annotation or NAD; traffic both ways",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await startKubeEnv();
    let fabric: TestNetns | undefined;
    try {
      // The objects and the node side's rights, as deploy/ ships them.
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
      await apply({
        apiVersion: api,
        kind: "Network",
        metadata: { name: "hy" },
        spec: { mode: "hybrid", vni: 7000, uplink: "br-fab", defaultKind: "overlay", mtu: 1450 },
      });
      await apply({
        apiVersion: api,
        kind: "Subnet",
        metadata: { name: "ov" },
        spec: { network: "hy", kind: "overlay", cidr: "10.250.0.0/16", blockSize: 24 },
      });
      await apply({
        apiVersion: api,
        kind: "Subnet",
        metadata: { name: "fab" },
        spec: {
          network: "hy",
          kind: "underlay",
          cidr: "192.168.50.0/24",
          gateway: GATEWAY,
          start: "192.168.50.64",
          end: "192.168.50.191",
          blockSize: 28,
        },
      });
      // The node's blocks and fabric address, as the node's set-up annotates them.
      await env.cp.kubectl(
        "annotate",
        "node",
        env.nodeName,
        "hydra.clusternet.io/hy.cidr=10.250.1.0/24,192.168.50.64/28",
        `hydra.clusternet.io/hy.address=${NODE_ADDRESS}`,
      );

      // The node's uplink bridge on a fabric whose gateway lives in a namespace of its own.
      const ipn = (...a: string[]) => run("ip", "-n", env.node.name, ...a);
      await ipn("link", "add", "br-fab", "type", "bridge");
      await ipn("addr", "add", `${NODE_ADDRESS}/24`, "dev", "br-fab");
      await ipn("link", "set", "br-fab", "up");
      await env.node.exec("sysctl", "-qw", "net.ipv4.ip_forward=1");
      fabric = await createNetns("hkf");
      await ipn("link", "add", "fab0", "type", "veth", "peer", "eth0", "netns", fabric.name);
      await ipn("link", "set", "fab0", "master", "br-fab", "up");
      await run("ip", "-n", fabric.name, "addr", "add", `${GATEWAY}/24`, "dev", "eth0");
      await run("ip", "-n", fabric.name, "link", "set", "eth0", "up");

      const cluster = env.bridgeNet("cluster", { isGateway: true });
      await env.nad("kube-system", "cluster", cluster.conf);
      // Two NADs of one network under different names: they share the node's address store.
      const hybridNad = (kind?: string) => ({
        cniVersion: "1.0.0",
        name: kind ? `hy-${kind}` : "hy",
        type: "hydra-hybrid",
        network: "hy",
        ...(kind ? { kind } : {}),
        kubeconfig: env.kubeconfigNode,
        nodeName: env.nodeName,
        dataDir: `${env.dir}/hybrid`,
      });
      await env.nad(env.ns, "hy", hybridNad());
      await env.nad(env.ns, "hy-fabric", hybridNad("underlay"));
      // The node kubeconfig lives in the world's folder, not in /etc/cni/net.d.
      const conf = env.metaConf({
        clusterNetwork: "cluster",
        nadPathRoots: { state: [env.dir], read: [env.dir] },
      });

      const attach = async (name: string, annotations: Record<string, string>) => {
        const pod: Pod = await env.createPod(name, annotations);
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
        assert.equal(out.code, 0, out.stdout);
        return { pod, netns, ip: (await net1(netns))!.split("/")[0] };
      };
      const ov = await attach("ov", { "k8s.v1.cni.cncf.io/networks": "hy" });
      const ul = await attach("ul", {
        "k8s.v1.cni.cncf.io/networks": "hy",
        "hybrid.hydra.clusternet.io/kind": "underlay",
      });
      const asked = await attach("asked", { "k8s.v1.cni.cncf.io/networks": "hy-fabric" });

      // Each from its node's block of the subnet it chose (the fabric's /24 is the pods' subnet:
      // the block's first address, 192.168.50.64, is an ordinary host address there).
      assert.match(ov.ip, /^10\.250\.1\.\d+$/);
      for (const p of [ul, asked]) {
        const last = Number(p.ip.split(".")[3]);
        assert.ok(p.ip.startsWith("192.168.50.") && last >= 64 && last < 80, p.ip);
      }
      assert.notEqual(ul.ip, asked.ip);

      // Overlay ↔ underlay through the node, both ways; underlay pods on the fabric itself.
      assert.ok(await pings(ov.netns, ul.ip), "overlay → underlay");
      assert.ok(await pings(ul.netns, ov.ip), "underlay → overlay");
      assert.ok(await pings(asked.netns, ov.ip), "underlay (asked by NAD) → overlay");
      assert.ok(await pings(ul.netns, GATEWAY), "underlay → the fabric's gateway");
      assert.ok(await pings(fabric, ul.ip), "the fabric → underlay pod");
      assert.ok(!(await pings(fabric, ov.ip)), "the fabric has no way to an overlay pod");
      // The underlay pod's way to the overlay is its node, not the fabric's gateway.
      const route = await run("ip", "-n", ul.netns.name, "route", "get", ov.ip);
      assert.match(route, new RegExp(`via ${NODE_ADDRESS.replaceAll(".", "\\.")} dev net1`));

      // A kind the network does not have is refused with a clear message.
      const bad = await env.createPod("bad", {
        "k8s.v1.cni.cncf.io/networks": "hy",
        "hybrid.hydra.clusternet.io/kind": "elsewhere",
      });
      const badNs = await env.podNetns();
      const refused = await env.cni("ADD", conf, { netns: badNs, pod: bad.metadata });
      assert.notEqual(refused.code, 0);
      assert.match(
        String(refused.json?.msg ?? refused.stdout),
        /"elsewhere" is neither a kind \(overlay, underlay\) nor one of its subnets/,
      );
      const records = await Array.fromAsync(Deno.readDir(`${env.dir}/hybrid/.hydra-hybrid`));
      assert.deepEqual(
        records.map((e) => e.name).sort(),
        [ov, ul, asked].map((p) => `ctr-${p.netns.name}-net1.json`).sort(),
      );

      // DEL, with the API server's objects gone: the record is what it undoes.
      await env.cp.kubectl("delete", "subnets", "--all");
      for (const p of [ov, ul, asked]) {
        const out = await env.cni("DEL", conf, { netns: p.netns, pod: p.pod.metadata });
        assert.equal(out.code, 0, out.stdout);
        assert.equal(await net1(p.netns), undefined);
      }
      assert.deepEqual(await Array.fromAsync(Deno.readDir(`${env.dir}/hybrid/.hydra-hybrid`)), []);
      // The addresses went back to the node's blocks: none is held any more.
      const held = await Array.fromAsync(Deno.readDir(`${env.dir}/hybrid`));
      for (const d of held.filter((e) => e.isDirectory && !e.name.startsWith("."))) {
        const files = await Array.fromAsync(Deno.readDir(`${env.dir}/hybrid/${d.name}`));
        assert.deepEqual(files.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f.name)), [], d.name);
      }
    } finally {
      if (fabric) await deleteNetns(fabric);
      await env.close();
    }
  },
});
