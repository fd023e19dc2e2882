/**
 * Runs one CNI command the way a container runtime does: exec the plugin
 * file with CNI_* in a minimal environment and the config on stdin, inside
 * the node namespace, and time it from just before the fork to the moment
 * its output is in.
 *
 * With `rss` the plugin runs under GNU time, which reports the peak
 * resident set (`%M`, the kernel's ru_maxrss: the largest single process of
 * the invocation, the plugin and every child it waited for) after the
 * process is gone; that works for processes that live a few milliseconds,
 * where sampling /proc would miss the peak. The wrapper costs a fork and an
 * exec, so RSS runs are never the timed ones.
 *
 * CPU time is the user+system time of the invocation's whole process tree
 * (getrusage(RUSAGE_CHILDREN) before and after; one invocation runs at a
 * time): unlike latency it hardly depends on what else the machine runs.
 *
 * @module
 */

import { outputInNetns } from "../netlink/netns_spawn.ts";

const rusage = Deno.dlopen("libc.so.6", {
  getrusage: { parameters: ["i32", "buffer"], result: "i32" },
});
const RUSAGE_CHILDREN = -1;

/** CPU time (user + system, ms) of every child process this one has waited for. */
export function childrenCpuMs(): number {
  // struct rusage starts with ru_utime and ru_stime, two struct timevals (s, µs).
  const buf = new BigInt64Array(18);
  rusage.symbols.getrusage(RUSAGE_CHILDREN, new Uint8Array(buf.buffer));
  return Number(buf[0] + buf[2]) * 1e3 + Number(buf[1] + buf[3]) / 1e3;
}

/** GNU time, for peak RSS of short-lived processes. */
export const GNU_TIME = "/usr/bin/time";

/** One CNI invocation. */
export interface CniCall {
  /** Plugin file to exec (a hydra role symlink, a reference plugin, multus). */
  exe: string;
  command: "ADD" | "DEL" | "CHECK";
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_PATH directories. */
  path: readonly string[];
  config: Uint8Array;
}

/** How it went. */
export interface CniOutcome {
  /** Wall time, milliseconds. */
  ms: number;
  /** CPU time of the invocation's process tree, milliseconds. */
  cpuMs: number;
  code: number;
  stdout: string;
  stderr: string;
  /** Peak RSS in KiB (only when run with `rss`). */
  rssKiB?: number;
}

const decoder = new TextDecoder();

function env(call: CniCall): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName,
    CNI_ARGS: "",
    CNI_PATH: call.path.join(":"),
  };
}

/**
 * Execs `exe` with `env` and `stdin` inside the namespace at `nodePath` (forked
 * from this thread while it is in that namespace, so the plugin starts there,
 * as under a runtime on the node), timed from just before the fork until its
 * output is in. With `rssFile`, runs it under GNU time writing `%M` there.
 */
export async function execInNetns(
  nodePath: string,
  exe: string,
  env: Record<string, string>,
  stdin: Uint8Array,
  rssFile?: string,
): Promise<CniOutcome> {
  const [cmd, args] = rssFile
    ? [GNU_TIME, ["-f", "%M", "-o", rssFile, exe]]
    : [exe, [] as string[]];
  const cpuStart = childrenCpuMs();
  const start = performance.now();
  const out = await outputInNetns(nodePath, cmd, { args, env, clearEnv: true, stdin });
  const ms = performance.now() - start;
  const outcome: CniOutcome = {
    ms,
    cpuMs: childrenCpuMs() - cpuStart,
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (rssFile) {
    const kib = Number((await Deno.readTextFile(rssFile)).trim().split("\n").pop());
    if (Number.isFinite(kib)) outcome.rssKiB = kib;
  }
  return outcome;
}

/**
 * Execs `call` inside the namespace at `nodePath` and waits for it. With
 * `rssFile`, runs it under GNU time writing `%M` there.
 */
export function runCni(nodePath: string, call: CniCall, rssFile?: string): Promise<CniOutcome> {
  return execInNetns(nodePath, call.exe, env(call), call.config, rssFile);
}

/** Throws a readable error unless the invocation succeeded. */
export function assertSucceeded(label: string, call: CniCall, out: CniOutcome): void {
  if (out.code === 0) return;
  const detail = (out.stdout.trim() || out.stderr.trim() || "(no output)").slice(0, 2000);
  throw new Error(
    `${label}: ${call.command} of ${call.exe} (container ${call.containerId}) exited ${out.code}: ${detail}`,
  );
}

/** True when GNU time is installed (needed for peak RSS). */
export function haveGnuTime(): boolean {
  try {
    return Deno.statSync(GNU_TIME).isFile;
  } catch {
    return false;
  }
}
