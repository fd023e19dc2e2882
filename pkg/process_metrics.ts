/**
 * The metrics every long-running role exposes besides its own: the
 * standard `process_*` families (as Prometheus client libraries name them,
 * so dashboards built for other exporters work) and `hydra_build_info`.
 *
 * Figures come from Linux's /proc at each scrape; where a file cannot be
 * read its family is left out rather than reported as 0.
 *
 * @module
 */

import type { Registry } from "./metrics.ts";
import { buildRevision, VERSION } from "./version.ts";

/** Linux reports CPU times and start times in these ticks (USER_HZ, 100 on every arch). */
const TICKS_PER_SECOND = 100;

/** One reading of the process's figures; a field is undefined when unreadable. */
export interface ProcessFigures {
  cpuSeconds?: number;
  residentBytes?: number;
  virtualBytes?: number;
  openFds?: number;
  maxFds?: number;
  startTimeSeconds?: number;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
function statFields(text: string | undefined): string[] | undefined {
  if (!text) return undefined;
  const end = text.lastIndexOf(")");
  return end < 0 ? undefined : text.slice(end + 2).trim().split(/\s+/);
}

function numberOr(text: string | undefined): number | undefined {
  const n = Number(text);
  return text !== undefined && text !== "" && Number.isFinite(n) ? n : undefined;
}

/** The system's boot time in seconds since the epoch (`btime` of /proc/stat). */
function bootTime(proc: string): number | undefined {
  return numberOr(/^btime\s+(\d+)$/m.exec(readText(`${proc}/stat`) ?? "")?.[1]);
}

function countEntries(dir: string): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(dir)) n++;
    return n;
  } catch {
    return undefined;
  }
}

/**
 * Reads the figures of the process `pid` ("self" by default) under `proc`
 * (where procfs is mounted).
 */
export function readProcessFigures(proc = "/proc", pid = "self"): ProcessFigures {
  const dir = `${proc}/${pid}`;
  // Field numbers of proc(5) minus 3: the list starts at field 3 (state).
  const stat = statFields(readText(`${dir}/stat`));
  const ticks = (i: number) => numberOr(stat?.[i]);
  const utime = ticks(11), stime = ticks(12), start = ticks(19);
  const boot = bootTime(proc);
  const rssKb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readText(`${dir}/status`) ?? "")?.[1];
  const maxFds = /^Max open files\s+(\d+)/m.exec(readText(`${dir}/limits`) ?? "")?.[1];
  return {
    cpuSeconds: utime === undefined || stime === undefined
      ? undefined
      : (utime + stime) / TICKS_PER_SECOND,
    residentBytes: rssKb === undefined ? undefined : Number(rssKb) * 1024,
    virtualBytes: ticks(20),
    openFds: countEntries(`${dir}/fd`),
    maxFds: numberOr(maxFds),
    startTimeSeconds: start === undefined || boot === undefined
      ? undefined
      : boot + start / TICKS_PER_SECOND,
  };
}

/**
 * Adds the `process_*` families and `hydra_build_info` to a role's
 * registry. `read` is the figures' source (tests pass their own).
 */
export function addProcessMetrics(
  registry: Registry,
  read: () => ProcessFigures = () => readProcessFigures(),
): void {
  // One /proc reading serves every family of a scrape.
  let cached: { at: number; figures: ProcessFigures } | undefined;
  const figure = (key: keyof ProcessFigures) => () => {
    const now = performance.now();
    if (!cached || now - cached.at > 100) cached = { at: now, figures: read() };
    return cached.figures[key];
  };
  const families: [string, string, "counter" | "gauge", keyof ProcessFigures][] = [
    [
      "process_cpu_seconds_total",
      "User and system CPU time spent, in seconds.",
      "counter",
      "cpuSeconds",
    ],
    ["process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", "residentBytes"],
    ["process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", "virtualBytes"],
    ["process_open_fds", "Open file descriptors.", "gauge", "openFds"],
    ["process_max_fds", "The limit of open file descriptors.", "gauge", "maxFds"],
    [
      "process_start_time_seconds",
      "When the process started, in seconds since the epoch.",
      "gauge",
      "startTimeSeconds",
    ],
  ];
  for (const [name, help, type, key] of families) {
    registry.observed(name, help, type, figure(key));
  }
  registry.gauge(
    "hydra_build_info",
    "Always 1; the labels say which hydra runs (version, and the source revision of its image).",
    ["version", "revision"],
  ).set({ version: VERSION, revision: buildRevision() }, 1);
}
