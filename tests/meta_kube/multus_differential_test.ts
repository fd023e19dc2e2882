/**
 * Differential test against Multus: the Multus v4 thin plugin (the peer
 * tests/infra/build-peers.sh builds) and hydra's meta-CNI in Kubernetes mode
 * run on twin pods (same namespace, same annotations, a fresh network
 * namespace each) with the same clusterNetwork, the same NADs and the same
 * reference plugins as delegates, against a real kube-apiserver. What each
 * leaves in the pod is compared field by field: interfaces (name, kind, MTU,
 * MAC present), addresses (family, prefix length, the NAD's range), routes,
 * the result returned to the runtime (values that legitimately differ, like
 * allocated addresses and MACs, normalised), and the network-status
 * annotation entry by entry. DEL by both must leave nothing behind.
 *
 * Where hydra deliberately differs from Multus v4 the difference is asserted
 * explicitly, each with its reason (the `DIFFERENCE` comments): CNI error
 * codes, DEL without a record, other writers' network-status entries, the
 * default route's gateway in network-status, the older `networks`
 * annotation.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins,
 * multus); fails when one is missing.
 */

import { nodeAgentKubeconfig } from "../kube/helpers.ts";
import { jsonKubeconfig, NODE_API_ADDRESS } from "./api_access.ts";
import assert from "node:assert/strict";
import { peerBin } from "../infra/peers.ts";
import { listFiles } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import type { ExecOutput } from "../helpers/cni.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "./harness.ts";
import type { Pod } from "../../kube/objects.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";
const DEFAULT_NETWORK = "v1.multus-cni.io/default-network";

type Side = "multus" | "hydra";

/** One network of the world: its NAD (or conf file) name and its "10.A.B" /24. */
interface Net {
  name: string;
  subnet: string;
}

/** The world of this test: both meta-CNIs' confs and the networks they share. */
interface Diff {
  env: KubeEnv;
  /** The Multus thin plugin. */
  multus: string;
  /** Multus's cache of delegates per container (its `cniDir`). */
  multusCache: string;
  /** The networks by key: cluster, alt, blue, green, foreign, lists. */
  nets: Record<string, Net>;
  /** The cluster network's NAD config (to put it back after a step removed it). */
  clusterConf: Record<string, unknown>;
  /** The meta-CNI conf of a side, with extra keys. */
  conf(side: Side, extra?: Record<string, unknown>): Record<string, unknown>;
}

/** One interface of a pod as compared: addresses reduced to their shape. */
interface IfaceView {
  name: string;
  kind: string;
  mtu: number;
  hasMac: boolean;
  /** "inet/24 in blue": family, prefix length and the network whose range holds it. */
  addrs: string[];
}

/** What one side left in its pod after ADD. */
interface SideView {
  code: number;
  /** CNI error code of a failed ADD. */
  errorCode?: number;
  ifaces: IfaceView[];
  routes: string[];
  result?: unknown;
}

/** One ADD by one side on its twin pod. */
interface Run {
  side: Side;
  pod: Pod;
  netns: TestNetns;
  out: ExecOutput;
}

interface IpAddrDetail {
  ifname: string;
  mtu: number;
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
}

/** The network whose /24 holds `ip`, or "outside". */
function rangeOf(d: Diff, ip: string): string {
  for (const [key, net] of Object.entries(d.nets)) {
    if (ip.startsWith(`${net.subnet}.`)) return key;
  }
  return "outside";
}

/** A pod's interfaces (lo left out), each reduced to what must match. */
async function interfaces(d: Diff, netns: TestNetns): Promise<IfaceView[]> {
  const list = await netns.ipJson<IpAddrDetail[]>("-d", "addr", "show");
  return list.filter((l) => l.ifname !== "lo").map((l) => ({
    name: l.ifname,
    kind: l.linkinfo?.info_kind ?? "",
    mtu: l.mtu,
    hasMac: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(l.address ?? ""),
    addrs: l.addr_info.filter((a) => a.scope !== "link")
      .map((a) => `${a.family}/${a.prefixlen} in ${rangeOf(d, a.local)}`),
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** A pod's IPv4 routes as "dst via gw dev": what the pod's traffic follows. */
async function routes(netns: TestNetns): Promise<string[]> {
  const list = await netns.ipJson<IpRoute[]>("route", "show");
  return list.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.dev}`).sort();
}

const IPV4 = /^(\d+\.\d+\.\d+)\.(\d+)(\/\d+)?$/;
const MAC = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
/** The host end of a pod veth, named at random by the bridge plugin. */
const HOST_VETH = /^veth[0-9a-f]{8}$/;

/**
 * A value with what legitimately differs between twins replaced: the host
 * part of allocated addresses (gateways, .1, stay), MACs and netns paths.
 */
function normalise(value: unknown): unknown {
  if (typeof value === "string") {
    const ip = IPV4.exec(value);
    if (ip && ip[2] !== "1") return `${ip[1]}.N${ip[3] ?? ""}`;
    if (MAC.test(value)) return "<mac>";
    if (value.startsWith("/var/run/netns/")) return "<netns>";
    if (HOST_VETH.test(value)) return "<host veth>";
    return value;
  }
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
  }
  return value;
}

/** The fields of a network-status entry Multus documents, normalised. */
function statusEntries(pod: Pod | undefined): Record<string, unknown>[] {
  return networkStatus(pod).map((e) =>
    normalise({
      name: e.name,
      interface: e.interface,
      ips: e.ips,
      mac: e.mac,
      default: e.default ?? false,
      dns: e.dns ?? {},
      gateway: e.gateway,
    }) as Record<string, unknown>
  );
}

/** Everything a side left in its pod after ADD. */
async function view(d: Diff, run: Run): Promise<SideView> {
  const json = run.out.json;
  return {
    code: run.out.code,
    errorCode: run.out.code === 0 ? undefined : json?.code as number | undefined,
    ifaces: await interfaces(d, run.netns),
    routes: await routes(run.netns),
    result: run.out.code === 0 ? normalise(json) : undefined,
  };
}

/** Creates the twin pod of `side` and runs that side's ADD in a fresh netns. */
async function add(
  d: Diff,
  side: Side,
  name: string,
  annotations: Record<string, string>,
  extra: Record<string, unknown> = {},
  namespace = d.env.ns,
): Promise<Run> {
  const pod = await d.env.createPod(`${name}-${side[0]}`, annotations, { namespace });
  const netns = await d.env.podNetns();
  const out = await d.env.cni("ADD", d.conf(side, extra), {
    netns,
    pod: pod.metadata,
    program: side === "multus" ? d.multus : undefined,
  });
  return { side, pod, netns, out };
}

/** The container id the harness gives a netns. */
const containerIdOf = (netns: TestNetns) => `ctr-${netns.name}`;

/** Files under `dir` whose name or content mention `containerId`. */
async function filesNaming(dir: string, containerId: string): Promise<string[]> {
  const found: string[] = [];
  for (const rel of await listFiles(dir)) {
    const text = await Deno.readTextFile(`${dir}/${rel}`).catch(() => "");
    if (rel.includes(containerId) || text.includes(containerId)) found.push(rel);
  }
  return found;
}

/** Host ends of pod veths left in the node namespace. */
async function nodeVeths(d: Diff): Promise<string[]> {
  const list = await d.env.node.ipJson<IpAddrDetail[]>("-d", "link", "show");
  return list.filter((l) => l.linkinfo?.info_kind === "veth").map((l) => l.ifname).sort();
}

/** DEL by the side that made `run`; then nothing of it may be left. */
async function del(d: Diff, run: Run, extra: Record<string, unknown> = {}): Promise<ExecOutput> {
  const out = await d.env.cni("DEL", d.conf(run.side, extra), {
    netns: run.netns,
    pod: run.pod.metadata,
    program: run.side === "multus" ? d.multus : undefined,
  });
  assert.equal(out.code, 0, `${run.side} DEL: ${out.stdout}`);
  assert.deepEqual(await interfaces(d, run.netns), [], `${run.side} DEL left interfaces`);
  const id = containerIdOf(run.netns);
  assert.deepEqual(await filesNaming(`${d.env.dir}/ipam`, id), [], `${run.side}: IPAM leases`);
  const cache = run.side === "multus" ? d.multusCache : d.env.cacheDir;
  assert.deepEqual(await filesNaming(cache, id), [], `${run.side}: cached records`);
  return out;
}

/** How a twin comparison differs from the plain one. */
interface TwinOptions {
  /** Extra keys of both meta-CNI confs. */
  extra?: Record<string, unknown>;
  /** network-status entries whose `gateway` hydra deliberately fills (see assertSameStatus). */
  gatewayDiffers?: number[];
  /** Runs between Multus's ADD and hydra's (e.g. to swap a NAD's plugins for built-ins). */
  beforeHydra?: () => Promise<void>;
}

/** Runs both sides' ADD on twin pods, compares them, DELs both, and returns the views. */
async function compareTwins(
  d: Diff,
  name: string,
  annotations: Record<string, string>,
  opts: TwinOptions = {},
): Promise<{ multus: SideView; hydra: SideView }> {
  const { extra = {}, gatewayDiffers = [] } = opts;
  const vethsBefore = await nodeVeths(d);
  const m = await add(d, "multus", name, annotations, extra);
  await opts.beforeHydra?.();
  const h = await add(d, "hydra", name, annotations, extra);
  const multus = await view(d, m);
  const hydra = await view(d, h);
  assert.deepEqual(hydra.ifaces, multus.ifaces, `${name}: interfaces`);
  assert.deepEqual(hydra.routes, multus.routes, `${name}: routes`);
  assert.deepEqual(hydra.result, multus.result, `${name}: result returned to the runtime`);
  if (multus.code === 0) {
    await eventually(`${name}: both network-status annotations`, async () => {
      const [pm, ph] = [await podOf(d, m), await podOf(d, h)];
      return networkStatus(pm).length > 0 && networkStatus(ph).length > 0;
    });
    const [sm, sh] = [statusEntries(await podOf(d, m)), statusEntries(await podOf(d, h))];
    assertSameStatus(sm, sh, name, gatewayDiffers);
    await del(d, m, extra);
    await del(d, h, extra);
  }
  assert.deepEqual(await nodeVeths(d), vethsBefore, `${name}: host-side veths left`);
  return { multus, hydra };
}

const podOf = (d: Diff, run: Run) =>
  d.env.getPod(run.pod.metadata.namespace!, run.pod.metadata.name!);

/**
 * network-status entry by entry; `gatewayDiffers` names entries whose
 * `gateway` hydra deliberately fills where Multus leaves it out (see the
 * default-route DIFFERENCE below).
 */
function assertSameStatus(
  multus: Record<string, unknown>[],
  hydra: Record<string, unknown>[],
  name: string,
  gatewayDiffers: number[] = [],
): void {
  assert.equal(hydra.length, multus.length, `${name}: network-status entries`);
  hydra.forEach((h, i) => {
    const m = multus[i];
    for (const field of ["name", "interface", "ips", "mac", "default", "dns", "gateway"]) {
      if (field === "gateway" && gatewayDiffers.includes(i)) continue;
      assert.deepEqual(h[field], m[field], `${name}: network-status[${i}].${field}`);
    }
  });
}

/** Starts the world: control plane, the networks as NADs, both confs. */
async function startDiff(): Promise<Diff> {
  const multus = peerBin("multus"); // throws (fails the test) when it was not built
  const env = await startKubeEnv();
  try {
    const nets: Record<string, Net> = {};
    const bridge = async (key: string, namespace: string, extra = {}) => {
      const { conf, subnet } = env.bridgeNet(key, extra);
      await env.nad(namespace, key, conf);
      nets[key] = { name: key, subnet };
      return { conf, subnet };
    };
    const cluster = await bridge("cluster", "kube-system", { isGateway: true });
    await bridge("alt", "kube-system", { isGateway: true });
    await bridge("blue", env.ns, { isGateway: true });
    await bridge("green", env.ns);
    await bridge("foreign", env.other);
    // A NAD holding a conflist: bridge with static IPAM (ips), then tuning (mac).
    const lists = env.bridgeNet("lists");
    nets.lists = { name: "lists", subnet: lists.subnet };
    const { ipam: _ipam, name: _name, cniVersion: _v, ...bridgeOnly } = lists.conf;
    await env.nad(env.ns, "lists", {
      cniVersion: "1.0.0",
      name: "lists",
      plugins: [
        { ...bridgeOnly, ipam: { type: "static" }, capabilities: { ips: true } },
        { type: "tuning", capabilities: { mac: true } },
      ],
    });
    const multusCache = `${env.dir}/multus`;
    // Multus gets an account of its own, with the rights it asks for (it writes network-status
    // with an update of pods/status); hydra's node identity has only what hydra uses.
    const multusKubeconfig = await jsonKubeconfig(
      await nodeAgentKubeconfig(env.cp, env.ns),
      `${env.dir}/multus.kubeconfig`,
      `https://${NODE_API_ADDRESS}:${new URL(env.cp.server).port}`,
    );
    return {
      env,
      multus,
      multusCache,
      nets,
      clusterConf: cluster.conf,
      conf(side, extra = {}) {
        if (side === "hydra") return env.metaConf({ clusterNetwork: "cluster", ...extra });
        return {
          cniVersion: "1.0.0",
          name: "multus-cni-network",
          type: "multus",
          kubeconfig: multusKubeconfig,
          clusterNetwork: "cluster",
          multusNamespace: "kube-system",
          confDir: env.confDir,
          cniDir: multusCache,
          binDir: env.referenceBin,
          logFile: `${env.dir}/multus.log`,
          logLevel: "debug",
          ...extra,
        };
      },
    };
  } catch (err) {
    await env.close();
    throw err;
  }
}

Deno.test("Multus differential: hydra's Kubernetes mode attaches what Multus thin attaches", async (t) => {
  const d = await startDiff();
  const { env, nets } = d;
  try {
    await t.step("the cluster network alone", async () => {
      const { hydra } = await compareTwins(d, "plain", {});
      assert.deepEqual(hydra.ifaces.map((i) => i.name), ["eth0"]);
    });

    await t.step("short form, with ns/name@ifname", async () => {
      const { hydra } = await compareTwins(d, "short", {
        [NETWORKS]: `blue, green, ${env.other}/foreign@fast0`,
      });
      assert.deepEqual(
        hydra.ifaces.map((i) => `${i.name}:${i.addrs}`),
        [
          "eth0:inet/24 in cluster",
          "fast0:inet/24 in foreign",
          "net1:inet/24 in blue",
          "net2:inet/24 in green",
        ],
      );
    });

    await t.step("JSON form: ips and mac through a NAD holding a conflist", async () => {
      const ip = `${nets.lists.subnet}.77/24`;
      const { hydra } = await compareTwins(d, "json", {
        [NETWORKS]: JSON.stringify([
          { name: "lists", interface: "data0", ips: [ip], mac: "02:00:00:00:00:77" },
          { name: "green", namespace: env.ns },
        ]),
      });
      const data0 = hydra.ifaces.find((i) => i.name === "data0");
      assert.deepEqual(data0?.addrs, ["inet/24 in lists"]);
      // The exact address and MAC asked for, by both (the views keep only shapes).
      for (const side of ["multus", "hydra"] as const) {
        const run = await add(d, side, "json2", {
          [NETWORKS]: JSON.stringify([{ name: "lists", ips: [ip], mac: "02:00:00:00:00:78" }]),
        });
        const link = (await run.netns.ipJson<IpAddrDetail[]>("addr", "show", "net1"))[0];
        assert.equal(link.address, "02:00:00:00:00:78", side);
        assert.equal(`${link.addr_info[0].local}/${link.addr_info[0].prefixlen}`, ip, side);
        await del(d, run);
      }
    });

    await t.step("default-route selection moves the default route", async () => {
      const gw = `${nets.blue.subnet}.1`;
      // network-status[1].gateway: see "DIFFERENCE: the default route's gateway".
      const { hydra } = await compareTwins(
        d,
        "route",
        {
          [NETWORKS]: JSON.stringify([{ name: "blue", "default-route": [gw] }]),
        },
        { gatewayDiffers: [1] },
      );
      assert.ok(hydra.routes.includes(`default via ${gw} dev net1`), String(hydra.routes));
      assert.ok(!hydra.routes.some((r) => r.startsWith("default") && r.endsWith("eth0")));
    });

    await t.step("the default-network annotation replaces the cluster network", async () => {
      const { hydra } = await compareTwins(d, "override", {
        [DEFAULT_NETWORK]: "alt",
        [NETWORKS]: "green",
      });
      assert.deepEqual(
        hydra.ifaces.map((i) => `${i.name}:${i.addrs}`),
        ["eth0:inet/24 in alt", "net1:inet/24 in green"],
      );
    });

    await t.step("hydra's built-ins in place of the reference plugins", async () => {
      // Multus runs the NAD as written (bridge + host-local); for hydra the same
      // NAD names hydra-bridge + hydra-ipam with the same fields (same bridge,
      // range and lease store): what the pod gets must not change.
      const nadPath =
        `/apis/k8s.cni.cncf.io/v1/namespaces/${env.ns}/network-attachment-definitions/builtin`;
      const { conf, subnet } = env.bridgeNet("builtin", { isGateway: true });
      nets.builtin = { name: "builtin", subnet };
      await env.nad(env.ns, "builtin", conf);
      const ipam = conf.ipam as Record<string, unknown>;
      const { hydra } = await compareTwins(d, "builtin", { [NETWORKS]: "builtin" }, {
        beforeHydra: async () => {
          await env.cp.api.must("DELETE", nadPath);
          await env.nad(env.ns, "builtin", {
            ...conf,
            type: "hydra-bridge",
            ipam: { ...ipam, type: "hydra-ipam" },
          });
        },
      });
      assert.deepEqual(hydra.ifaces.map((i) => `${i.name}:${i.addrs}`), [
        "eth0:inet/24 in cluster",
        "net1:inet/24 in builtin",
      ]);
    });

    await t.step("namespaceIsolation refuses another namespace's NAD in both", async () => {
      const { multus, hydra } = await compareTwins(
        d,
        "isolated",
        { [NETWORKS]: `green,${env.other}/foreign` },
        { extra: { namespaceIsolation: true } },
      );
      assert.notEqual(multus.code, 0);
      assert.notEqual(hydra.code, 0);
      assert.deepEqual(hydra.ifaces, [], "nothing may be attached");
      // DIFFERENCE: Multus answers every failure with CNI error 999 (a code
      // outside the spec's range); hydra uses the spec's codes, here 7 (invalid
      // network config), so runtimes and operators can tell bad input from
      // transient trouble (11, try again later).
      assert.equal(multus.errorCode, 999);
      assert.equal(hydra.errorCode, 7);
    });

    await t.step("DIFFERENCE: a missing NAD: error codes, and DEL without a record", async () => {
      const m = await add(d, "multus", "missing", { [NETWORKS]: "nosuch" });
      const h = await add(d, "hydra", "missing", { [NETWORKS]: "nosuch" });
      // Both refuse the pod and attach nothing; Multus says 999, hydra 7 (see above).
      assert.equal(m.out.json?.code, 999, m.out.stdout);
      assert.equal(h.out.json?.code, 7, h.out.stdout);
      assert.match(String(h.out.json?.msg), /nosuch/);
      assert.deepEqual(await interfaces(d, m.netns), []);
      assert.deepEqual(await interfaces(d, h.netns), []);
      // The runtime then DELs the failed sandbox. With the cluster network's NAD
      // gone meanwhile, Multus (no cache: ADD failed) looks the networks up again
      // and fails, on every retry, so the sandbox is never removed; hydra has no
      // record to undo, logs it, and succeeds: a DEL that cannot succeed would
      // block the sandbox forever.
      await env.cp.api.must(
        "DELETE",
        `/apis/k8s.cni.cncf.io/v1/namespaces/kube-system/network-attachment-definitions/cluster`,
      );
      try {
        for (let retry = 0; retry < 2; retry++) {
          const md = await env.cni("DEL", d.conf("multus"), {
            netns: m.netns,
            pod: m.pod.metadata,
            program: d.multus,
          });
          assert.notEqual(md.code, 0, "Multus DEL succeeded");
          assert.equal(md.json?.code, 999);
        }
        await del(d, h);
      } finally {
        await env.nad("kube-system", "cluster", d.clusterConf);
      }
    });
  } finally {
    await env.close();
  }
});

Deno.test("Multus differential: where hydra deliberately differs from Multus v4", async (t) => {
  const d = await startDiff();
  const { env } = d;
  try {
    await t.step("DIFFERENCE: other writers' network-status entries are kept", async () => {
      // Another component (a device plugin's controller, a second CNI) wrote its
      // own entry first. Multus v4 replaces the whole annotation with its own
      // entries; hydra merges, keeping entries of networks it did not attach, so
      // two writers do not erase each other.
      const theirs = [{ name: "other-writer/sriov", interface: "vf0", ips: ["192.0.2.9"] }];
      const annotations = {
        [NETWORKS]: "green",
        [NETWORK_STATUS]: JSON.stringify(theirs),
      };
      const m = await add(d, "multus", "writers", annotations);
      const h = await add(d, "hydra", "writers", annotations);
      assert.equal(m.out.code, 0, m.out.stdout);
      assert.equal(h.out.code, 0, h.out.stdout);
      await eventually("hydra's entries beside the other writer's", async () => {
        return networkStatus(await podOf(d, h)).length === 3;
      });
      const names = async (run: Run) => networkStatus(await podOf(d, run)).map((e) => e.name);
      assert.deepEqual(await names(m), ["kube-system/cluster", `${env.ns}/green`]);
      assert.deepEqual(
        (await names(h)).sort(),
        ["kube-system/cluster", "other-writer/sriov", `${env.ns}/green`].sort(),
      );
      await del(d, m);
      await del(d, h);
    });

    await t.step("DIFFERENCE: the default route's gateway in network-status", async () => {
      // The pod asks for its default route through blue. Multus v4 moves the
      // route but builds blue's entry from the delegate's result, which names no
      // default route, so the entry has no `gateway`; hydra writes the gateway
      // the pod's default route now uses, so the annotation tells which network
      // carries the pod's default traffic.
      const gw = `${d.nets.blue.subnet}.1`;
      const annotations = {
        [NETWORKS]: JSON.stringify([{ name: "blue", "default-route": [gw] }]),
      };
      const m = await add(d, "multus", "gateway", annotations);
      const h = await add(d, "hydra", "gateway", annotations);
      for (const run of [m, h]) {
        assert.ok((await routes(run.netns)).includes(`default via ${gw} dev net1`), run.side);
      }
      await eventually(
        "both network-status annotations",
        async () =>
          networkStatus(await podOf(d, m)).length === 2 &&
          networkStatus(await podOf(d, h)).length === 2,
      );
      const blueOf = async (run: Run) => networkStatus(await podOf(d, run))[1];
      assert.equal((await blueOf(m)).name, `${env.ns}/blue`);
      assert.equal((await blueOf(m)).gateway, undefined);
      assert.deepEqual((await blueOf(h)).gateway, [gw]);
      await del(d, m);
      await del(d, h);
    });

    await t.step("DIFFERENCE: the older `networks` annotation is read", async () => {
      // Multus v4 reads only k8s.v1.cni.cncf.io/networks; hydra also honours the
      // older `networks` annotation (with kubernetes-network.cni.cncf.io Network
      // objects or NADs), so pods of clusters that still use it keep their networks.
      const annotations = { networks: "green" };
      const m = await add(d, "multus", "older", annotations);
      const h = await add(d, "hydra", "older", annotations);
      assert.deepEqual((await interfaces(d, m.netns)).map((i) => i.name), ["eth0"]);
      assert.deepEqual((await interfaces(d, h.netns)).map((i) => i.name), ["eth0", "net1"]);
      await del(d, m);
      await del(d, h);
    });
  } finally {
    await env.close();
  }
});
