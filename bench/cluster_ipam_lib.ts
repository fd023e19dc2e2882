/**
 * The engine of the cluster-IPAM benchmark (bench/cluster_ipam.ts) and of
 * its short form in the tests: simulated nodes whose "kubelet" runs the
 * IPAM plugin for the node's pods as a runtime does (exec per ADD and
 * DEL, a bounded number at once per node, a failed ADD retried with a new
 * sandbox after a second), Pod objects in a real kube-apiserver made and
 * deleted as Deployments do, and the phases: create, re-create, power
 * cycle (every node-side process SIGKILLed while ADDs are in flight, then
 * restarted), delete. Each phase reports pods per second, duplicates (an
 * address held by two live pods), and for the power cycle how long the
 * leaked addresses took to be reclaimed.
 *
 * A peer (hydra-pool, whereabouts) plugs in through {@link Peer}.
 *
 * @module
 */

import { childrenCpuMs } from "./cni_exec.ts";

/** What one exec'd IPAM invocation gave. */
export interface ExecResult {
  code: number;
  stdout: string;
  /** The address (ADD that succeeded). */
  ip?: string;
  /** Killed by a SIGKILL of this benchmark (the power cut). */
  killed: boolean;
}

/** One recorded allocation in a peer's store. */
export interface StoreEntry {
  ip: string;
  /** `namespace/name`. */
  pod?: string;
  podUID?: string;
}

/** A pod as the simulated kubelet knows it. */
export interface SimPod {
  namespace: string;
  name: string;
  uid: string;
  node: string;
}

/** An IPAM implementation under test. */
export interface Peer {
  name: string;
  /** Starts the node-side processes (none for an exec-only plugin). */
  startNodes(nodes: string[]): Promise<void>;
  /** SIGKILLs every node-side process (not the exec'd ones: the engine kills those). */
  killNodes(): Promise<void>;
  /** Runs one CNI command for a pod on its node. */
  exec(
    command: "ADD" | "DEL",
    pod: SimPod & { ip?: string },
    containerId: string,
    track: Set<Deno.ChildProcess>,
  ): Promise<ExecResult>;
  /** Every allocation its store records. */
  store(): Promise<StoreEntry[]>;
  /**
   * CPU seconds its long-running processes have used so far, by process
   * kind; `reaped`: how much of it belongs to processes this one has reaped
   * (counted among its children, which the execs' share subtracts).
   */
  cpuSeconds(): Record<string, number>;
  /** Peak RSS of its long-running node-side processes, MiB (0 when it has none). */
  daemonRssMiB(): Promise<number>;
  /** Peak RSS of an exec'd ADD (run under GNU time) repeating one that succeeded, MiB. */
  execRssMiB(pod: SimPod, containerId: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** The Pod objects' side: create and delete in the API server. */
export interface PodApi {
  create(namespace: string, name: string, node: string): Promise<SimPod>;
  delete(pod: SimPod): Promise<void>;
}

/** One phase's figures. */
export interface PhaseResult {
  podsPerSecond: number;
  seconds: number;
  duplicates: number;
  /** Pods whose ADD finished (all of them unless `failed`). */
  pods: number;
  failed?: boolean;
  /** Failed ADD attempts (retried). */
  retries: number;
  /**
   * CPU seconds spent during the phase, by process kind: the control plane, the peer's
   * long-running processes, the exec'd plugins (with what exited), this benchmark.
   */
  cpuSeconds?: Record<string, number>;
  /** Power cycle: allocations of pods that no longer exist when the phase ends. */
  leakedAtEnd?: number;
  /** Power cycle: seconds after the phase until none is left (null: not within the wait). */
  leakedAfterReclaimSeconds?: number | null;
  leakedRemaining?: number;
}

/** Options of a run. */
export interface RunOptions {
  nodes: number;
  pods: number;
  groupSize: number;
  perNode: number;
  phaseTimeoutMs: number;
  /** How long leaks may take to be reclaimed before the power cycle gives up waiting. */
  reclaimWaitMs: number;
  /** How many ADDs per phase run under GNU time for the exec's RSS. */
  rssSamples: number;
  log: (msg: string) => void;
  /** CPU seconds used so far by processes outside the peer (the control plane), by kind. */
  cpuSeconds?: () => Record<string, number>;
}

/** A peer's whole run. */
export interface PeerResult {
  create?: PhaseResult;
  recreate?: PhaseResult;
  powercycle?: PhaseResult;
  delete?: PhaseResult;
  rssMiB: number;
  rss: { daemonMiB: number; execMiB: number | null };
  error?: string;
}

const SUFFIX = "bcdfghjklmnpqrstvwxz2456789";

/** A Deployment-style pod name: `<group>-<5 random characters>`. */
function podName(group: string): string {
  let s = "";
  for (let i = 0; i < 5; i++) s += SUFFIX[Math.floor(Math.random() * SUFFIX.length)];
  return `${group}-${s}`;
}

/** A live pod and what its last ADD gave. */
type LivePod = SimPod & { ip?: string; containerId?: string };

/** A bounded worker queue per node: the simulated kubelet. */
class NodeQueue {
  #running = 0;
  #waiting: (() => void)[] = [];
  constructor(readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limit) await new Promise<void>((r) => this.#waiting.push(r));
    else this.#running++;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

/** State shared by a peer's phases. */
class Cluster {
  /** Live pods by `ns/name`, with the address and sandbox of their last ADD. */
  live = new Map<string, LivePod>();
  queues = new Map<string, NodeQueue>();
  inflight = new Set<Deno.ChildProcess>();
  /** Invocations running now (exec'd or handed over). */
  busy = 0;
  /** Set while the node-side processes are down (ADDs wait; DELs are lost). */
  down?: Promise<void>;
  retries = 0;
  aborted = false;
  rssSampled = 0;
  execRss: number[] = [];

  constructor(
    readonly peer: Peer,
    readonly api: PodApi,
    readonly o: RunOptions,
    readonly ns: string,
  ) {
    for (let i = 0; i < o.nodes; i++) this.queues.set(nodeName(i), new NodeQueue(o.perNode));
  }

  /** ADD until it succeeds (a new sandbox per attempt), as a kubelet retries a failed sandbox. */
  async add(pod: SimPod): Promise<boolean> {
    for (let attempt = 0; !this.aborted; attempt++) {
      const containerId = `${pod.name}-${attempt}-${crypto.randomUUID().slice(0, 8)}`;
      const r = await this.queues.get(pod.node)!.run(async () => {
        // While the node is down nothing runs on it; what was queued waits for it.
        while (this.down) await this.down;
        // A phase that ran out of time starts nothing more.
        if (this.aborted) return { code: 1, stdout: "", killed: true };
        this.busy++;
        try {
          return await this.peer.exec("ADD", pod, containerId, this.inflight);
        } finally {
          this.busy--;
        }
      });
      if (r.code === 0 && r.ip) {
        const key = `${pod.namespace}/${pod.name}`;
        if (this.live.has(key)) this.live.set(key, { ...pod, ip: r.ip, containerId });
        if (this.rssSampled < this.o.rssSamples) {
          this.rssSampled++;
          const rss = await this.peer.execRssMiB(pod, containerId).catch(() => undefined);
          if (rss !== undefined) this.execRss.push(rss);
        }
        return true;
      }
      this.retries++;
      if (!r.killed) await new Promise((res) => setTimeout(res, 1_000));
    }
    return false;
  }

  /**
   * DEL of a deleted pod's sandbox, retried while it fails; one the power
   * cut kills, or one due while the node is down, is lost, as on a real node.
   */
  async del(pod: LivePod): Promise<void> {
    if (!pod.containerId) return;
    for (let attempt = 0; attempt < 30 && !this.aborted; attempt++) {
      const r = await this.queues.get(pod.node)!.run(async () => {
        if (this.down || this.aborted) return { code: 0, stdout: "", killed: true };
        return await this.peer.exec("DEL", pod, pod.containerId!, this.inflight);
      });
      if (r.code === 0 || r.killed) return;
      await new Promise((res) => setTimeout(res, 1_000));
    }
  }

  async createPod(group: string, index: number): Promise<SimPod> {
    const pod = await this.api.create(this.ns, podName(group), nodeName(index % this.o.nodes));
    this.live.set(`${pod.namespace}/${pod.name}`, pod);
    return pod;
  }

  async deletePod(pod: LivePod): Promise<void> {
    this.live.delete(`${pod.namespace}/${pod.name}`);
    await this.api.delete(pod);
  }

  /** Addresses held by more than one live pod. */
  duplicates(): number {
    const count = new Map<string, number>();
    for (const p of this.live.values()) if (p.ip) count.set(p.ip, (count.get(p.ip) ?? 0) + 1);
    return [...count.values()].filter((n) => n > 1).length;
  }

  /** Allocations of the store whose pod is not live (by UID when recorded). */
  async leaks(): Promise<number> {
    const uids = new Set([...this.live.values()].map((p) => p.uid));
    const names = new Set(this.live.keys());
    return (await this.peer.store()).filter((e) =>
      e.podUID ? !uids.has(e.podUID) : e.pod !== undefined && !names.has(e.pod)
    ).length;
  }

  /** SIGKILLs the node-side processes and every exec in flight; back up after `downMs`. */
  async powerCut(downMs: number): Promise<void> {
    let up!: () => void;
    this.down = new Promise<void>((r) => (up = r));
    await this.peer.killNodes();
    for (const child of this.inflight) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, downMs));
    await this.peer.startNodes([...this.queues.keys()]);
    this.down = undefined;
    up();
  }
}

/** The name of simulated node `i`. */
export function nodeName(i: number): string {
  return `sim-node-${i}`;
}

/** CPU seconds of every process kind so far (see PhaseResult.cpuSeconds). */
function cpuNow(c: Cluster): Record<string, number> {
  const self = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  const tick = 100;
  const { reaped = 0, ...peer } = c.peer.cpuSeconds();
  return {
    ...(c.o.cpuSeconds?.() ?? {}),
    ...peer,
    execs: childrenCpuMs() / 1000 - reaped,
    bench: (Number(self[11]) + Number(self[12])) / tick,
  };
}

/** Runs `work` against the phase timeout; marks the cluster aborted when it runs out. */
async function timed(
  c: Cluster,
  work: Promise<boolean[]>,
): Promise<{ seconds: number; done: number; failed: boolean; cpu: Record<string, number> }> {
  const cpu0 = cpuNow(c);
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((
    r,
  ) => (timer = setTimeout(() => r("late"), c.o.phaseTimeoutMs)));
  const done = { n: 0 };
  const counted = work.then((all) => {
    done.n = all.filter(Boolean).length;
    return "done" as const;
  });
  let first: "done" | "late";
  try {
    first = await Promise.race([counted, late]);
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuNow(c);
  const cpu = Object.fromEntries(
    Object.entries(cpu1).map(([k, v]) => [k, Math.round((v - (cpu0[k] ?? 0)) * 10) / 10]),
  );
  if (first === "late") {
    c.aborted = true;
    for (const child of c.inflight) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }
    const reached = [...c.live.values()].filter((p) => p.ip).length;
    await work.catch(() => []);
    return { seconds, done: reached, failed: true, cpu };
  }
  return { seconds, done: done.n, failed: false, cpu };
}

function phase(
  c: Cluster,
  t: { seconds: number; done: number; failed: boolean; cpu: Record<string, number> },
  retries: number,
): PhaseResult {
  return {
    cpuSeconds: t.cpu,
    podsPerSecond: Math.round((t.done / t.seconds) * 10) / 10,
    seconds: Math.round(t.seconds * 10) / 10,
    duplicates: c.duplicates(),
    pods: t.done,
    retries,
    ...(t.failed ? { failed: true } : {}),
  };
}

/** Runs `fn` over `items`, `limit` at a time (the controllers' pace on the API server). */
async function eachLimited<T, R>(
  items: T[],
  limit: number,
  fn: (t: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

/** The Pod objects of every group (Deployments scaling up), made before the timed part. */
async function createPods(c: Cluster, groups: number): Promise<SimPod[]> {
  const slots = Array.from({ length: groups * c.o.groupSize }, (_, i) => i);
  return await eachLimited(
    slots,
    20,
    (i) => c.createPod(`app-${Math.floor(i / c.o.groupSize)}`, i),
  );
}

/** ADDs every pod: the timed part of "create". */
function addAll(c: Cluster, pods: SimPod[]): Promise<boolean[]> {
  return Promise.all(pods.map((p) => c.add(p)));
}

/**
 * Every pod replaced (a Deployment rollout with maxSurge 100%): the new Pod
 * objects made and the old ones deleted first; returns the timed part, DEL
 * of each old pod beside the ADD of its successor.
 */
async function replacePods(
  c: Cluster,
): Promise<(onProgress?: (done: number) => void) => Promise<boolean[]>> {
  const old = [...c.live.values()];
  const fresh = await eachLimited(old, 20, async (pod, i) => {
    const [made] = await Promise.all([
      c.createPod(pod.name.slice(0, pod.name.lastIndexOf("-")), i),
      c.deletePod(pod),
    ]);
    return made;
  });
  return (onProgress?: (done: number) => void) => {
    let done = 0;
    return Promise.all(old.map(async (pod, i) => {
      const [ok] = await Promise.all([c.add(fresh[i]), c.del(pod)]);
      onProgress?.(++done);
      return ok;
    }));
  };
}

/** Runs every phase for one peer. */
export async function runPeer(
  peer: Peer,
  api: PodApi,
  o: RunOptions,
  ns: string,
): Promise<PeerResult> {
  const c = new Cluster(peer, api, o, ns);
  const out: PeerResult = { rssMiB: 0, rss: { daemonMiB: 0, execMiB: null } };
  const groups = Math.ceil(o.pods / o.groupSize);
  try {
    await peer.startNodes([...c.queues.keys()]);
    o.log(`${peer.name}: create`);
    const pods = await createPods(c, groups);
    let before = c.retries;
    out.create = phase(c, await timed(c, addAll(c, pods)), c.retries - before);
    c.aborted = false;

    o.log(`${peer.name}: re-create`);
    const recreate = await replacePods(c);
    before = c.retries;
    c.rssSampled = 0;
    out.recreate = phase(c, await timed(c, recreate()), c.retries - before);
    c.aborted = false;

    o.log(`${peer.name}: power cycle`);
    const cycle = await replacePods(c);
    before = c.retries;
    let cut: Promise<void> | undefined;
    const total = c.live.size;
    const t = await timed(
      c,
      cycle((done) => {
        // The power goes once 40 % are done, while ADDs are in flight.
        if (!cut && done >= total * 0.4 && c.busy > 0) cut = c.powerCut(2_000);
      }),
    );
    await cut;
    out.powercycle = phase(c, t, c.retries - before);
    c.aborted = false;
    out.powercycle.leakedAtEnd = await c.leaks();
    const t0 = performance.now();
    let left = out.powercycle.leakedAtEnd;
    while (left > 0 && performance.now() - t0 < o.reclaimWaitMs) {
      await new Promise((r) => setTimeout(r, 2_000));
      left = await c.leaks();
    }
    out.powercycle.leakedAfterReclaimSeconds = left === 0
      ? Math.round((performance.now() - t0) / 100) / 10
      : null;
    if (left > 0) out.powercycle.leakedRemaining = left;

    o.log(`${peer.name}: delete`);
    const doomed = [...c.live.values()];
    await eachLimited(doomed, 20, (p) => c.deletePod(p));
    before = c.retries;
    const del = timed(
      c,
      Promise.all(doomed.map(async (p) => {
        await c.del(p);
        return true;
      })),
    );
    const d = await del;
    out.delete = { ...phase(c, d, c.retries - before), duplicates: 0 };
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  } finally {
    c.aborted = true;
    out.rss.daemonMiB = await peer.daemonRssMiB().catch(() => 0);
    out.rss.execMiB = c.execRss.length ? Math.max(...c.execRss) : null;
    out.rssMiB = Math.max(out.rss.daemonMiB, out.rss.execMiB ?? 0);
    await peer.stop();
  }
  return out;
}
