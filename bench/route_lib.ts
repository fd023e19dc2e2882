/**
 * Plumbing of the router benchmark: a node namespace on an underlay, a
 * synthetic cluster of N nodes, processes started inside the namespace,
 * and measurements (kernel polls, CPU, RSS, percentiles).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import {
  addAddr,
  addLink,
  closeHandle,
  createNamedNetns,
  deleteNamedNetns,
  type Handle,
  listRoutes,
  lookupRoute,
  openHandle,
  setLinkUp,
  withNetnsSync,
} from "../netlink/mod.ts";

/** The hydra launcher of this tree. */
export const hydraBin = fileURLToPath(new URL("../bin/hydra", import.meta.url));

/** A node namespace with `eth0` on a /15 underlay (peer end in a namespace of its own). */
export interface BenchNode {
  name: string;
  path: string;
  peerName: string;
  handle: Handle;
}

/** Host number h (>= 2) of the underlay, in the first (pool 0) or second (pool 1) /16. */
export function underlayAddress(h: number, pool = 0): string {
  return `10.${200 + pool}.${h >> 8}.${h & 255}`;
}

/** Pod CIDR of node i. */
export function podCidr(i: number): string {
  return `10.${64 + (i >> 8)}.${i & 255}.0/24`;
}

/** Node i as the node list file describes it; node0 is the local one. */
export function nodeEntry(i: number, pool = 0) {
  return { name: `node${i}`, podCIDRs: [podCidr(i)], addresses: [underlayAddress(i + 2, pool)] };
}

/** Creates the node namespace and its underlay. */
export function createBenchNode(tag: string): BenchNode {
  const id = `${tag}-${Deno.pid.toString(36)}-${crypto.randomUUID().slice(0, 4)}`;
  const name = `hyb-${id}`;
  const peerName = `hyb-${id}-p`;
  const path = createNamedNetns(name);
  const peerPath = createNamedNetns(peerName);
  const handle = openHandle({ netnsPath: path });
  try {
    addLink(handle, { kind: "veth", name: "eth0", peer: { name: "p0", netns: peerPath } });
    addAddr(handle, "eth0", `${underlayAddress(2)}/15`);
    setLinkUp(handle, "eth0");
    setLinkUp(handle, "lo");
    const ph = openHandle({ netnsPath: peerPath });
    try {
      setLinkUp(ph, "p0");
    } finally {
      closeHandle(ph);
    }
    return { name, path, peerName, handle };
  } catch (err) {
    closeHandle(handle);
    deleteNamedNetns(name);
    deleteNamedNetns(peerName);
    throw err;
  }
}

/** Removes the node namespace and its peer. */
export function destroyBenchNode(n: BenchNode): void {
  closeHandle(n.handle);
  for (const ns of [n.name, n.peerName]) {
    try {
      deleteNamedNetns(ns);
    } catch {
      // already gone
    }
  }
}

/** Starts a program inside the node's namespace. */
export function spawnIn(
  n: BenchNode,
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return withNetnsSync(
    n.path,
    () =>
      new Deno.Command(program, { args, env, stdin: "null", stdout: "null", stderr: "null" })
        .spawn(),
  );
}

/** Routes of `protocol` in the node's namespace. */
export function countRoutes(n: BenchNode, protocol: number): number {
  return listRoutes(n.handle, { protocol, family: 4 }).length;
}

/** The gateway the kernel uses for `ip` right now (undefined when unrouted). */
export function gatewayFor(n: BenchNode, ip: string): string | undefined {
  try {
    return lookupRoute(n.handle, ip).gateway;
  } catch {
    return undefined;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Sleeps the thread (not the event loop) for `ms`: fine-grained polling between syscalls. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Polls `check` every `stepMs` until it holds; returns the milliseconds
 * from `since` (a performance.now() value) to the first poll that saw it.
 */
export function pollUntil(
  check: () => boolean,
  since: number,
  timeoutMs: number,
  stepMs = 0.25,
): number {
  for (;;) {
    if (check()) return performance.now() - since;
    if (performance.now() - since > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    sleepSync(stepMs);
  }
}

/**
 * Like {@link pollUntil}, but yields to the event loop between polls (about
 * 1 ms apart), for when this process also serves something (the relay).
 */
export async function pollUntilAsync(
  check: () => boolean,
  since: number,
  timeoutMs: number,
): Promise<number> {
  for (;;) {
    if (check()) return performance.now() - since;
    if (performance.now() - since > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await pause(1);
  }
}

/** An async pause. */
export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU time (user + system) of a process in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident set size of a process in MiB. */
export function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024 * 10) / 10;
}

/** CPU use (percent of one core) of a process over `ms` of rest, and its RSS afterwards. */
export async function atRest(
  pid: number,
  ms: number,
): Promise<{ cpuPercent: number; rssMiB: number }> {
  const before = cpuSeconds(pid);
  await pause(ms);
  const used = cpuSeconds(pid) - before;
  return { cpuPercent: Math.round(used / (ms / 1000) * 1000) / 10, rssMiB: rssMiB(pid) };
}

/** p50, p99, max and mean of a sample, rounded to 0.1 ms. */
export function percentiles(
  values: number[],
): { n: number; p50: number; p99: number; max: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    n: sorted.length,
    p50: r(at(0.5)),
    p99: r(at(0.99)),
    max: r(sorted[sorted.length - 1]),
    mean: r(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

/** Waits for a child to exit after SIGTERM (SIGKILL after `graceMs`). */
export async function stopChild(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}
