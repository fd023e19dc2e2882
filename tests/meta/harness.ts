/**
 * A small world for the meta-CNI's kernel tests: a "node" network namespace
 * where hydra (and the plugins it execs) run, so every host-side link they
 * make (bridges, veth host ends, macvlan parents) lives there and never on
 * the real host; "pod" namespaces to attach; and temp folders for hydra's
 * cache and host-local's data. Everything is removed by `close()`.
 *
 * @module
 */

import { type ExecOutput, execWithStdin } from "../helpers/cni.ts";
import { createNetns, deleteNetns, type TestNetns, uniqueName } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";

/** The launcher every test execs, as a runtime would. */
export const HYDRA = `${REPO_ROOT}/bin/hydra`;

/** Debian's reference plugins. */
export const REFERENCE_CNI = "/usr/lib/cni";

/** One link as `ip -j link` prints it. */
export interface IpLink {
  ifname: string;
  flags: string[];
  operstate?: string;
  master?: string;
  link_type?: string;
  address?: string;
}

/** One interface as `ip -j addr` prints it. */
export interface IpAddr extends IpLink {
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** What one invocation printed and returned. */
export type HydraOutput = ExecOutput;

/** The test world. */
export interface World {
  node: TestNetns;
  pods: TestNetns[];
  /** Temp folder root; cacheDir and dataDir are inside. */
  dir: string;
  cacheDir: string;
  dataDir: string;
  /** A unique /24 per call: "10.A.B". */
  subnet(): string;
  /** Execs `HYDRA` (or `program`) inside the node namespace with a CNI env. */
  cni(
    command: string,
    conf: unknown,
    opts?: {
      pod?: TestNetns;
      containerId?: string;
      ifName?: string;
      program?: string;
      env?: Record<string, string>;
    },
  ): Promise<HydraOutput>;
  close(): Promise<void>;
}

const used = new Set<string>();

function randomSubnet(): string {
  for (;;) {
    const [a, b] = crypto.getRandomValues(new Uint8Array(2));
    const s = `10.${200 + (a % 50)}.${b}`;
    if (!used.has(s)) {
      used.add(s);
      return s;
    }
  }
}

/** Runs a program with env (added to this process's) and stdin inside a namespace. */
export function execIn(
  ns: TestNetns,
  program: string,
  args: string[],
  env: Record<string, string>,
  stdin: string,
): Promise<HydraOutput> {
  return execWithStdin("ip", ["netns", "exec", ns.name, program, ...args], env, stdin, true);
}

/** Builds a world with one node namespace and `podCount` pod namespaces. */
export async function makeWorld(podCount = 1): Promise<World> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-meta-" });
  const made: TestNetns[] = [];
  try {
    const node = await createNetns("hyn");
    made.push(node);
    const pods: TestNetns[] = [];
    for (let i = 0; i < podCount; i++) {
      const pod = await createNetns("hyp");
      made.push(pod);
      pods.push(pod);
    }
    const world: World = {
      node,
      pods,
      dir,
      cacheDir: `${dir}/cache`,
      dataDir: `${dir}/ipam`,
      subnet: randomSubnet,
      cni: (command, conf, opts = {}) => {
        const pod = opts.pod ?? pods[0];
        const env: Record<string, string> = {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          CNI_COMMAND: command,
          CNI_CONTAINERID: opts.containerId ?? `ctr-${pod.name}`,
          CNI_NETNS: pod.path,
          CNI_IFNAME: opts.ifName ?? "eth0",
          CNI_PATH: REFERENCE_CNI,
          ...opts.env,
        };
        const text = typeof conf === "string" ? conf : JSON.stringify(conf);
        return execIn(node, opts.program ?? HYDRA, [], env, text);
      },
      close: async () => {
        for (const ns of made) await deleteNetns(ns);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
    return world;
  } catch (err) {
    for (const ns of made) await deleteNetns(ns);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Runs `fn` in a fresh world, always tearing it down. */
export async function withWorld<T>(podCount: number, fn: (w: World) => Promise<T>): Promise<T> {
  const world = await makeWorld(podCount);
  try {
    return await fn(world);
  } finally {
    await world.close();
  }
}

/** Links of a namespace by name. */
export async function links(ns: TestNetns): Promise<Map<string, IpAddr>> {
  const list = await ns.ipJson<IpAddr[]>("addr", "show");
  return new Map(list.map((l) => [l.ifname, l]));
}

/** The "address/prefix" strings of an interface, IPv4 and IPv6 (global scope only for v6). */
export function addresses(link: IpAddr | undefined): string[] {
  return (link?.addr_info ?? [])
    .filter((a) => a.family === "inet" || !a.local.startsWith("fe80"))
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** Files under a folder, recursively, relative paths, sorted; [] if it is missing. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    try {
      for await (const e of Deno.readDir(d)) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory) await walk(`${d}/${e.name}`, r);
        else out.push(r);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  };
  await walk(dir, "");
  return out.sort();
}

/** host-local reservations (files named after an IP) under a dataDir. */
export async function ipamReservations(dataDir: string): Promise<string[]> {
  return (await listFiles(dataDir)).filter((f) =>
    /\/[0-9a-f.:]+$/i.test(f) && /[.:]/.test(f.split("/").pop()!)
  );
}

/** A unique name for a host-side link inside the node namespace. */
export function linkName(prefix: string): string {
  return uniqueName(prefix);
}
