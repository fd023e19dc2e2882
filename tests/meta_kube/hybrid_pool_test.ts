/**
 * A hybrid overlay subnet on hydra's cluster-wide IPAM through the normal
 * attachment path: NADs of type `hydra-hybrid` run by the meta-CNI against
 * a real kube-apiserver, with the objects and rights of
 * deploy/hydra-hybrid.yaml and deploy/hydra-ipam.yaml (the node kubeconfig's
 * own identity allocates). Two overlay pods of a `pool: true` subnet get
 * addresses of the whole subnet from hydra-pool with the node's own pool
 * address as gateway (recorded in the API as the node's, on the overlay
 * bridge, proxy ARP on); they reach each other and an underlay pod both
 * ways; DEL releases a pod's address and leaves the node's gateway.
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
import type { AddressBlock } from "../../ipam/pool/objects.ts";
import { gatewaySandbox } from "../../hybridnet/gateway.ts";

const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));
const NODE_ADDRESS = "192.168.50.11";
const GATEWAY = "192.168.50.1";

async function net1(netns: TestNetns): Promise<string | undefined> {
  const link = (await links(netns)).get("net1");
  return link ? addresses(link)[0] : undefined;
}

Deno.test({
  name: "hydra-hybrid NADs: overlay pods from hydra-pool, the node's pool address their gateway",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await startKubeEnv();
    let fabric: TestNetns | undefined;
    try {
      // The objects and the node side's rights, as deploy/ ships them.
      await env.cp.kubectl("apply", "-f", deploy("hydra-hybrid.yaml"));
      await env.cp.kubectl("apply", "-f", deploy("hydra-ipam.yaml"));
      const end = Date.now() + 30_000;
      const served = () =>
        Promise.all([
          env.cp.kubectl("get", "subnets"),
          env.cp.kubectl("get", "addressblocks"),
        ]).then(() => true, () => false);
      while (!(await served())) {
        if (Date.now() > end) throw new Error("the CRDs are not served within 30 s");
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
        metadata: { name: "ovp" },
        spec: { network: "hy", kind: "overlay", cidr: "10.251.0.0/16", pool: true },
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
      await env.cp.kubectl(
        "annotate",
        "node",
        env.nodeName,
        "hydra.clusternet.io/hy.cidr=192.168.50.64/28",
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
      const ov1 = await attach("ov1", { "k8s.v1.cni.cncf.io/networks": "hy" });
      const ov2 = await attach("ov2", { "k8s.v1.cni.cncf.io/networks": "hy" });
      const ul = await attach("ul", { "k8s.v1.cni.cncf.io/networks": "hy-fabric" });

      // The pods: addresses of the whole subnet; the node: its own pool address on the bridge.
      for (const p of [ov1, ov2]) {
        assert.match((await net1(p.netns))!, /^10\.251\.\d+\.\d+\/16$/);
      }
      const blocks = async () =>
        (JSON.parse(await env.cp.kubectl("get", "addressblocks", "-o", "json")) as {
          items: AddressBlock[];
        }).items.filter((b) => b.spec.network === "ovp");
      const allocs = async () => (await blocks()).flatMap((b) => b.spec.allocations ?? []);
      const held = await allocs();
      const gw = held.find((a) => a.containerID === gatewaySandbox(env.nodeName));
      assert.ok(gw, JSON.stringify(held));
      assert.equal(gw.node, env.nodeName);
      assert.equal(gw.pod, undefined, "the gateway is the node's, not a pod's");
      assert.deepEqual(
        held.filter((a) => a.pod).map((a) => [a.pod, a.ip]).sort(),
        [[`${env.ns}/ov1`, ov1.ip], [`${env.ns}/ov2`, ov2.ip]],
      );
      assert.ok((await blocks()).every((b) => b.spec.node === env.nodeName));
      const bridge = await env.node.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
        "-4",
        "addr",
        "show",
        "dev",
        "hyo-hy",
      );
      assert.deepEqual(bridge[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`), [
        `${gw.ip}/16`,
      ]);
      const sysctl = (k: string) =>
        run("ip", "netns", "exec", env.node.name, "cat", `/proc/sys/net/ipv4/${k}`);
      assert.equal((await sysctl("conf/hyo-hy/proxy_arp")).trim(), "1");
      assert.equal((await sysctl("neigh/hyo-hy/proxy_delay")).trim(), "0");
      const route = await run("ip", "-n", ov1.netns.name, "route", "get", ul.ip);
      assert.match(route, new RegExp(`via ${gw.ip.replaceAll(".", "\\.")} dev net1`));

      // Overlay pool pods with each other, and with the underlay pod through their node.
      assert.ok(await pings(ov1.netns, ov2.ip), "overlay → overlay");
      assert.ok(await pings(ov2.netns, ov1.ip), "overlay → overlay, back");
      assert.ok(await pings(ov1.netns, ul.ip), "overlay → underlay");
      assert.ok(await pings(ul.netns, ov1.ip), "underlay → overlay");
      assert.ok(!(await pings(fabric, ov1.ip)), "the fabric has no way to an overlay pod");

      // DEL releases the pod's address; the node keeps its gateway for the next pod.
      const out = await env.cni("DEL", conf, { netns: ov1.netns, pod: ov1.pod.metadata });
      assert.equal(out.code, 0, out.stdout);
      assert.equal(await net1(ov1.netns), undefined);
      assert.deepEqual((await allocs()).map((a) => a.ip).sort(), [gw.ip, ov2.ip].sort());
      const ov3 = await attach("ov3", { "k8s.v1.cni.cncf.io/networks": "hy" });
      assert.ok(await pings(ov3.netns, ov2.ip), "a later pod, the same gateway");
      assert.equal((await allocs()).filter((a) => a.containerID === gw.containerID).length, 1);
    } finally {
      if (fabric) await deleteNetns(fabric);
      await env.close();
    }
  },
});
