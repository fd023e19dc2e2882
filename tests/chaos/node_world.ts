/**
 * A node for the fault cycles: a network namespace standing for the host
 * (plugins run there, as the runtime runs them on a node), pod namespaces
 * made and removed per container, the state folders hydra writes (IPAM
 * store, meta-CNI cache, tuning backups) in a scratch folder, and the
 * checks that compare what the kernel and those folders hold with the
 * containers that are alive.
 *
 * Container IDs carry a recognizable prefix (`chx` + hex), so any file
 * naming or holding one can be told apart from the node's own.
 *
 * @module
 */

import { closeHandle, listAddrs, listLinks, openHandle } from "../../netlink/mod.ts";
import { hostLockPath } from "../../plugins/host_lock.ts";
import { createNetns, deleteNetns, type TestNetns, uniqueName } from "../helpers/netns.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

/** The tree's hydra launcher and its role links. */
export const BIN = new URL("../../bin/", import.meta.url).pathname.replace(/\/$/, "");

/** The network every container of the node attaches to. */
export const NETWORK = "chaosnet";

/** A container of the node: its pod namespace and what its ADD answered. */
export interface Container {
  cid: string;
  pod: TestNetns;
  ifName: string;
  /** Addresses its ADD returned (without prefix length). */
  ips: string[];
  /** The host end of its veth, when its plugin makes one. */
  hostVeth?: string;
}

/** The node. */
export interface NodeWorld {
  id: string;
  dir: string;
  node: TestNetns;
  ipamDir: string;
  cacheDir: string;
  tuningDir: string;
  bridge: string;
  /** The live containers, by ID. */
  live: Map<string, Container>;
  /** Links of the node's own set-up (e.g. its way to the API server), never a container's. */
  ownLinks: Set<string>;
  /** A fresh container ID. */
  newCid(rng: Rng): string;
  /** A fresh pod namespace. */
  newPod(): Promise<TestNetns>;
  /** The network as a conf list (bridge with hydra-ipam, then tuning). */
  confList(): Record<string, unknown>;
  /** The bridge plugin alone, as a runtime execs it. */
  bridgeConf(): Record<string, unknown>;
  /** hydra-ipam alone, as a plugin delegates to it. */
  ipamConf(): Record<string, unknown>;
  /** The meta-CNI's conf wrapping {@link confList}. */
  metaConf(extra?: Record<string, unknown>): Record<string, unknown>;
  /** The CNI_* environment of one invocation in the node namespace. */
  env(
    command: string,
    c: { cid: string; pod?: TestNetns; ifName?: string },
  ): Record<string, string>;
  /** `ip netns exec <node>`: how every plugin is started. */
  inNode(program: string): { program: string; args: string[] };
  close(): Promise<void>;
}

/** Makes a node with a random /24 of 100.64.0.0/10 for its network. */
export async function createNodeWorld(rng: Rng): Promise<NodeWorld> {
  const id = rng.hex(6);
  const dir = await Deno.makeTempDir({ prefix: `hydra-chaos-${id}-` });
  const node = await createNetns("hcn");
  const pods = new Set<TestNetns>();
  const subnet = `100.${64 + rng.int(64)}.${rng.int(256)}.0/24`;
  const bridge = `hcb${id}`.slice(0, 15);
  const w: NodeWorld = {
    id,
    dir,
    node,
    ipamDir: `${dir}/ipam`,
    cacheDir: `${dir}/cache`,
    tuningDir: `${dir}/tuning`,
    bridge,
    live: new Map(),
    ownLinks: new Set(),
    newCid: (r) => `chx${r.hex(16)}`,
    async newPod() {
      const p = await createNetns("hcp");
      pods.add(p);
      return p;
    },
    bridgeConf() {
      return {
        cniVersion: "1.1.0",
        name: NETWORK,
        type: "hydra-bridge",
        bridge,
        isGateway: true,
        ipam: w.ipamConf().ipam,
      };
    },
    ipamConf() {
      return {
        cniVersion: "1.1.0",
        name: NETWORK,
        type: "hydra-ipam",
        ipam: { type: "hydra-ipam", subnet, dataDir: w.ipamDir },
      };
    },
    confList() {
      const { cniVersion: _v, name: _n, ...bridgePlugin } = w.bridgeConf();
      return {
        cniVersion: "1.1.0",
        name: NETWORK,
        plugins: [bridgePlugin, { type: "hydra-tuning", mtu: 1400, dataDir: w.tuningDir }],
      };
    },
    metaConf(extra = {}) {
      return {
        cniVersion: "1.1.0",
        name: "chaos-meta",
        type: "hydra",
        cacheDir: w.cacheDir,
        logFile: `${dir}/hydra.log`,
        logLevel: "warn",
        delegates: [w.confList()],
        ...extra,
      };
    },
    env(command, c) {
      const env: Record<string, string> = {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        CNI_COMMAND: command,
        CNI_CONTAINERID: c.cid,
        CNI_IFNAME: c.ifName ?? "eth0",
        CNI_PATH: BIN,
      };
      if (c.pod) env.CNI_NETNS = c.pod.path;
      return env;
    },
    inNode: (program) => ({ program: "ip", args: ["netns", "exec", node.name, program] }),
    async close() {
      for (const p of pods) await deleteNetns(p);
      await deleteNetns(node);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(hostLockPath(`bridge-${bridge}`)).catch(() => {});
    },
  };
  return w;
}

/** Deletes a pod namespace (the runtime's last step for a container). */
export async function removePod(pod: TestNetns): Promise<void> {
  await deleteNetns(pod);
}

/** The links and global addresses of a namespace, lo aside. */
export function netnsContents(path: string): { links: string[]; addresses: string[] } {
  const h = openHandle({ netnsPath: path });
  try {
    const links = listLinks(h).filter((l) => l.name !== "lo");
    const lo = new Set(listLinks(h).filter((l) => l.name === "lo").map((l) => l.index));
    const addresses = listAddrs(h).filter((a) => !lo.has(a.index) && a.scope === 0).map((a) =>
      a.cidr
    );
    return { links: links.map((l) => `${l.name}(${l.kind ?? "?"})`), addresses };
  } finally {
    closeHandle(h);
  }
}

/**
 * A pod namespace of a container that is not alive must hold nothing but
 * lo. A DEL may answer once the pod's links are down and renamed away
 * (`hy-del-*`), their deletion following; those get a few seconds to go.
 */
export async function checkEmptyPod(
  report: ChaosReport,
  scenario: string,
  cycle: number,
  pod: TestNetns,
  cid: string,
): Promise<void> {
  let left = netnsContents(pod.path);
  for (
    let i = 0;
    i < 50 && left.links.length && left.links.every((l) => l.startsWith("hy-del-"));
    i++
  ) {
    await new Promise((r) => setTimeout(r, 100));
    left = netnsContents(pod.path);
  }
  const { links, addresses } = left;
  report.find(
    "leakedLinks",
    scenario,
    `${cid}: pod namespace keeps ${links.join(", ")}`,
    cycle,
    links.length,
  );
  report.find(
    "leakedAddresses",
    scenario,
    `${cid}: pod namespace keeps ${addresses.join(", ")}`,
    cycle,
    addresses.length,
  );
}

/** The host ends of veths on the node no live container owns. */
export function strayHostLinks(w: NodeWorld): string[] {
  const owned = new Set([...w.live.values()].map((c) => c.hostVeth).filter((v) => v));
  const h = openHandle({ netnsPath: w.node.path });
  try {
    return listLinks(h)
      .filter((l) => l.kind === "veth" && !owned.has(l.name) && !w.ownLinks.has(l.name))
      .map((l) => l.name);
  } finally {
    closeHandle(h);
  }
}

const CID = /chx[0-9a-f]{16}/;

/** Every file below `dir` (recursively), as paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out;
}

/** IPAM reservations: address → the container holding it, for the node's network. */
export async function reservations(w: NodeWorld): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await filesUnder(`${w.ipamDir}/${NETWORK}`)) {
    const name = f.slice(f.lastIndexOf("/") + 1);
    if (name === "lock" || name.startsWith("last_reserved_ip") || name.startsWith(".")) continue;
    let holder = "";
    try {
      // A file zeroed or cut short names no one readable: NULs and blanks are not an ID.
      holder = Deno.readTextFileSync(f).split("\r\n")[0].replaceAll("\0", "").trim();
    } catch {
      holder = "";
    }
    out.set(name, holder);
  }
  return out;
}

/**
 * The whole node against its live containers: host links no live container
 * owns, IPAM reservations held for none (or for another), one address on
 * two live containers, and state files of containers that are gone (temp
 * and quarantined files included).
 */
export async function checkNode(
  w: NodeWorld,
  report: ChaosReport,
  scenario: string,
  cycle: number,
  files: "all" | "no-residue" | "residue" = "all",
): Promise<void> {
  if (files === "residue") return checkFiles(w, report, scenario, cycle, files);
  for (const link of strayHostLinks(w)) {
    report.findOnce(
      "leakedLinks",
      `${w.id}/${link}`,
      scenario,
      `host link ${link}: no live container owns it`,
      cycle,
    );
  }

  const held = await reservations(w);
  const byIp = new Map<string, string>();
  for (const c of w.live.values()) {
    for (const ip of c.ips) {
      const other = byIp.get(ip);
      if (other) {
        report.findOnce(
          "duplicates",
          `${ip}|${other}|${c.cid}`,
          scenario,
          `${ip} given to live ${other} and ${c.cid}`,
          cycle,
        );
      }
      byIp.set(ip, c.cid);
      // A reservation cut short names no one: not a second owner (a leak if it outlives c).
      const holder = held.get(ip);
      if (holder && holder !== c.cid && !c.cid.startsWith(holder)) {
        report.findOnce(
          "duplicates",
          `${ip}|${c.cid}|${holder}`,
          scenario,
          `${ip} of live ${c.cid} is reserved for ${holder}`,
          cycle,
        );
      }
    }
  }
  for (const [ip, holder] of held) {
    if (w.live.has(holder)) continue;
    // Cut short, it still names the live container that has the address (its DEL frees it).
    const owner = byIp.get(ip);
    if (holder && owner?.startsWith(holder)) continue;
    report.findOnce(
      "leakedAddresses",
      `${w.id}/ipam/${ip}|${holder}`,
      scenario,
      `IPAM holds ${ip} for ${holder || "(unreadable)"}, not alive`,
      cycle,
    );
  }

  await checkFiles(w, report, scenario, cycle, files);
}

/** Temp files of killed writes and files set aside as damaged. */
const RESIDUE = /\.tmp-|^\.hydra-tmp-|^\.damaged-/;

/**
 * State files of containers that are gone. Temp and quarantined files of a
 * live container are its DEL's to clean up: a leak once it is gone (or
 * when they name no container at all). With "no-residue" those are left
 * for {@link sweepResidue} and judged after it ("residue").
 */
async function checkFiles(
  w: NodeWorld,
  report: ChaosReport,
  scenario: string,
  cycle: number,
  files: "all" | "no-residue" | "residue",
): Promise<void> {
  for (const f of await residueOrLeft(w)) {
    const residue = RESIDUE.test(f.slice(f.lastIndexOf("/") + 1));
    if (files === (residue ? "no-residue" : "residue")) continue;
    report.findOnce("leakedFiles", f, scenario, `${f.slice(w.dir.length + 1)} left`, cycle);
  }
}

/** Files of the state folders that belong to no live container. */
async function residueOrLeft(w: NodeWorld): Promise<string[]> {
  const out: string[] = [];
  for (const dir of [w.cacheDir, w.tuningDir, w.ipamDir]) {
    for (const f of await filesUnder(dir)) {
      const name = f.slice(f.lastIndexOf("/") + 1);
      const cid = CID.exec(name)?.[0];
      if (cid !== undefined ? !w.live.has(cid) : RESIDUE.test(name)) out.push(f);
    }
  }
  return out;
}

/**
 * What the node does about temp files of killed writes and files set aside
 * as damaged: the runtime's GC of the network removes them once they are
 * old enough (a minute; a week for damaged ones, kept for a look). Here
 * they are made 8 days old (the crash was long ago), then the meta-CNI's GC
 * runs with the live containers as the valid attachments. Returns its
 * exit status and output.
 */
export async function sweepResidue(w: NodeWorld): Promise<{ code: number; stdout: string }> {
  const old = new Date(Date.now() - 8 * 24 * 3600_000);
  for (const f of await residueOrLeft(w)) {
    if (RESIDUE.test(f.slice(f.lastIndexOf("/") + 1))) await Deno.utime(f, old, old);
  }
  const run = w.inNode(`${BIN}/hydra`);
  const valid = [...w.live.values()].map((c) => ({ containerID: c.cid, ifname: c.ifName }));
  const out = await new Deno.Command(run.program, {
    args: run.args,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", CNI_COMMAND: "GC", CNI_PATH: BIN },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = out.stdin.getWriter();
  await stdin.write(
    new TextEncoder().encode(
      JSON.stringify({ ...w.metaConf(), "cni.dev/valid-attachments": valid }),
    ),
  );
  await stdin.close();
  const done = await out.output();
  return { code: done.code, stdout: new TextDecoder().decode(done.stdout) };
}

export { uniqueName };
