/**
 * A hybrid overlay subnet on hydra's cluster-wide IPAM: the real
 * `hydra-pool` (exec'd, against a real kube-apiserver) gives each node its
 * gateway address and each overlay pod an address of the whole subnet; the
 * real `hydra-bridge` wires the pods onto the node's overlay bridge with
 * those addresses, the overlay bridge answers ARP for other nodes' pods, and
 * the hybrid router routes every block a node claimed to that node. Pods on
 * two nodes then reach each other and the underlay pods both ways through
 * vxlan (counters), the outside masqueraded; DEL releases the pod's address
 * and leaves the node's gateway.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { cidrContains, closeHandle, openHandle } from "../../netlink/mod.ts";
import { hybridDelegate, placePod } from "../../hybridnet/attach.ts";
import { GATEWAY_IFNAME, gatewayConf, gatewaySandbox } from "../../hybridnet/gateway.ts";
import { type HybridNetwork, KIND_ANNOTATION, parseHybridNetwork } from "../../hybridnet/model.ts";
import { hybridNode } from "../../hybridnet/node.ts";
import { listPoolBlocks, withPoolBlocks } from "../../hybrid/pool.ts";
import { syncHybrid } from "../../hybrid/sync.ts";
import { type PoolWorld, startPoolWorld } from "../ipam_cluster/harness.ts";
import { createNetns, run } from "../helpers/netns.ts";
import {
  createHybridWorld,
  destroyHybridWorld,
  HYBRID_YAML,
  type HybridNode,
  type HybridPod,
  type HybridWorld,
  hydraBin,
  nodeInfos,
  OUTSIDE_IP,
  pings,
} from "./world.ts";
import { checkPair } from "./paths.ts";

const gatewayModule = fileURLToPath(new URL("../../hybridnet/gateway.ts", import.meta.url));
const POOL_CIDR = "10.251.0.0/16";

/** The world's network with a third subnet: an overlay subnet on the pool. */
function poolNetwork(name: string): HybridNetwork {
  const raw = (parseYaml(HYBRID_YAML) as { networks: Record<string, unknown>[] }).networks[0];
  raw.subnets = [...(raw.subnets as unknown[]), {
    name,
    kind: "overlay",
    cidr: POOL_CIDR,
    pool: true,
  }];
  return parseHybridNetwork(raw);
}

/** Runs a CNI plugin of this tree on `node`'s side, as a runtime there would. */
async function cniOnNode(
  node: HybridNode,
  plugin: string,
  command: string,
  conf: unknown,
  env: Record<string, string>,
): Promise<void> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", node.ns.name, `${hydraBin}-${plugin}`],
    env: {
      CNI_COMMAND: command,
      CNI_IFNAME: "eth0",
      CNI_PATH: hydraBin.slice(0, hydraBin.lastIndexOf("/")),
      ...env,
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(conf)));
  await w.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${plugin} ${command} on ${node.name}: ${text}`);
}

/** What one pool pod got. */
interface PoolPod {
  pod: HybridPod;
  conf: Record<string, unknown>;
  call: { containerId: string; pod: { namespace: string; name: string; uid: string } };
  gateway: string;
}

/**
 * Attaches an overlay pod of the pool subnet on `node`: the node's gateway
 * and the pod's address from the real hydra-pool, the pod wired by the
 * real hydra-bridge with them, proxy ARP by the plugin's own code.
 */
async function addPoolPod(
  pw: PoolWorld,
  net: HybridNetwork,
  node: HybridNode,
  subnet: string,
): Promise<PoolPod> {
  const poolOptions = { kubeconfig: pw.kubeconfig, daemonSocket: "", nodeName: node.name };
  const place = placePod(net, hybridNode(nodeInfos({ nodes: [node] } as HybridWorld)[0], net, []), {
    [KIND_ANNOTATION]: subnet,
  });
  assert.equal(place.subnet.name, subnet);
  const gwCall = { containerId: gatewaySandbox(node.name), ifName: GATEWAY_IFNAME };
  const gw = await pw.exec("ADD", gatewayConf(net, place.subnet, poolOptions), gwCall);
  assert.equal(gw.code, 0, gw.stdout);
  const gateway = gw.result!.ips![0].address.split("/")[0];
  const again = await pw.exec("ADD", gatewayConf(net, place.subnet, poolOptions), gwCall);
  assert.equal(again.result?.ips?.[0].address.split("/")[0], gateway, "one gateway per node");

  const name = `ovp-${node.name}`;
  const podObj = await pw.createPod(name, { node: node.name });
  const conf = hybridDelegate(net, place, node.address, {
    plugins: "hydra",
    defaultRoute: true,
    poolOptions,
    nodeGateway: gateway,
  }) as Record<string, unknown>;
  const call = {
    containerId: `${name}-sandbox`,
    pod: { namespace: pw.ns, name, uid: podObj.metadata.uid! },
  };
  const add = await pw.exec("ADD", conf, call);
  assert.equal(add.code, 0, add.stdout);
  const ip = add.result!.ips![0];
  assert.ok(cidrContains(POOL_CIDR, ip.address.split("/")[0]), ip.address);
  assert.match(ip.address, /\/16$/, "the pod's address has the subnet's prefix");
  assert.equal(ip.gateway, gateway);

  // The bridge delegate with the pool's answer, on the node.
  const ns = await createNetns("hyfp");
  const pod: HybridPod = { name, kind: "overlay", node, ns, ip: ip.address.split("/")[0] };
  node.pods.push(pod);
  const wired = {
    ...conf,
    ipam: {
      type: "hydra-static",
      addresses: [{ address: ip.address, gateway }],
      routes: add.result!.routes,
    },
  };
  await cniOnNode(node, "bridge", "ADD", wired, {
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: ns.path,
  });
  await run(
    "ip",
    "netns",
    "exec",
    node.ns.name,
    Deno.execPath(),
    "eval",
    `
    import { enableProxyArp } from ${JSON.stringify(gatewayModule)};
    enableProxyArp(${JSON.stringify(conf.bridge)});`,
  );
  return { pod, conf, call, gateway };
}

/** The router's pass on every node, with the pool's blocks from the API. */
async function syncAll(pw: PoolWorld, hw: HybridWorld, net: HybridNetwork): Promise<string[]> {
  const blocks = await listPoolBlocks(pw.client, net);
  const nodes = withPoolBlocks(nodeInfos(hw), net, blocks);
  for (const n of hw.nodes) {
    const h = openHandle({ netnsPath: n.ns.path });
    try {
      const s = syncHybrid(h, [net], nodes, n.name, n.ns.path);
      assert.equal(s.ok, true, JSON.stringify(s));
    } finally {
      closeHandle(h);
    }
  }
  return blocks.map((b) => `${b.cidr}@${b.node}`);
}

Deno.test({
  name: "hybrid + hydra-pool: overlay pool pods on two nodes reach each other and underlay pods",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const pw = await startPoolWorld();
    const hw = await createHybridWorld(2).catch(async (err) => {
      await pw.close();
      throw err;
    });
    try {
      const subnet = pw.network("ovp");
      const net = poolNetwork(subnet);
      const [n1, n2] = hw.nodes;
      // The underlay pods' route to the new overlay subnet, through their own node.
      for (const n of hw.nodes) {
        const ul = n.pods.find((p) => p.kind === "underlay")!;
        await run("ip", "-n", ul.ns.name, "route", "add", POOL_CIDR, "via", n.address);
      }
      const p1 = await addPoolPod(pw, net, n1, subnet);
      const p2 = await addPoolPod(pw, net, n2, subnet);
      assert.notEqual(p1.gateway, p2.gateway);

      // In the API: each node's gateway (the node's, no pod) and each pod's address.
      const allocs = await pw.allocations(subnet);
      const row = (ip: string) => allocs.find((a) => a.ip === ip);
      for (const [p, n] of [[p1, n1], [p2, n2]] as const) {
        assert.equal(row(p.gateway)?.node, n.name);
        assert.equal(row(p.gateway)?.pod, undefined);
        assert.equal(row(p.gateway)?.containerID, gatewaySandbox(n.name));
        assert.equal(row(p.pod.ip)?.pod, `${pw.ns}/${p.pod.name}`);
        assert.equal(row(p.pod.ip)?.blockNode, n.name, "the pod's address is in its node's block");
      }
      assert.equal(allocs.length, 4);

      // The router: each node's blocks routed on the other node, through vxlan.
      const blocks = await syncAll(pw, hw, net);
      for (const [here, there] of [[n1, n2], [n2, n1]] as const) {
        const table = await here.ns.ipJson<{ dst: string; gateway: string; dev: string }[]>(
          "route",
          "show",
          "table",
          "210",
        );
        const theirs = blocks.filter((b) => b.endsWith(`@${there.name}`)).map((b) =>
          b.split("@")[0]
        );
        assert.ok(theirs.length > 0);
        for (const b of theirs) {
          assert.ok(
            table.some((r) => r.dst === b && r.gateway === there.address && r.dev === "hy-hy"),
            `${here.name} routes ${there.name}'s block ${b}: ${JSON.stringify(table)}`,
          );
        }
      }
      const addrs = await n1.ns.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
        "-4",
        "addr",
        "show",
        "dev",
        "hyo-hy",
      );
      assert.deepEqual(
        addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`),
        [`${p1.gateway}/16`],
      );

      // Every pair both ways, on the path the model says (vxlan counters).
      const ul = (n: HybridNode) => n.pods.find((p) => p.kind === "underlay")!;
      const ov = (n: HybridNode) =>
        n.pods.find((p) => p.kind === "overlay" && p.ip.startsWith("10.250."))!;
      const pairs: [HybridPod, HybridPod, string][] = [
        [p1.pod, p2.pod, "vxlan"],
        [p2.pod, p1.pod, "vxlan"],
        [p1.pod, ul(n2), "vxlan"],
        [ul(n2), p1.pod, "vxlan"],
        [p2.pod, ul(n1), "vxlan"],
        [ul(n1), p2.pod, "vxlan"],
        [p1.pod, ov(n2), "vxlan"],
        [ov(n2), p1.pod, "vxlan"],
        [p1.pod, ul(n1), "local"],
        [ul(n1), p1.pod, "local"],
      ];
      for (const [a, b, path] of pairs) {
        assert.equal(await checkPair(hw, a, b), path, `${a.name} → ${b.name}`);
      }
      assert.ok(await pings(p1.pod.ns, OUTSIDE_IP), "overlay pool pod → outside, masqueraded");
      assert.ok(!(await pings(hw.outside, p1.pod.ip)), "the outside never reaches an overlay pod");

      // DEL releases the pod's address; the node keeps its gateway.
      const del = await pw.exec("DEL", p1.conf, p1.call);
      assert.equal(del.code, 0, del.stdout);
      const left = (await pw.allocations(subnet)).map((a) => a.ip).sort();
      assert.deepEqual(left, [p1.gateway, p2.gateway, p2.pod.ip].sort());
    } finally {
      await destroyHybridWorld(hw);
      await pw.close();
    }
  },
});
