/**
 * A description of the machine a benchmark ran on, printed with its figures
 * so numbers from different machines are never compared unknowingly.
 *
 * @module
 */

/** The machine and runtime. */
export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memoryMiB: number;
  kernel: string;
  deno: string;
  v8: string;
  /** 1/5/15-minute load averages when the benchmark started: other work competes for CPU. */
  loadAverage: number[];
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return fallback;
  }
}

/** Collects {@link MachineInfo} from /proc and the runtime. */
export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readOr("/proc/cpuinfo", "");
  const meminfo = await readOr("/proc/meminfo", "");
  const loadavg = await readOr("/proc/loadavg", "");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const memKiB = Number(/^MemTotal:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    cpuModel: model.trim(),
    cpus: navigator.hardwareConcurrency,
    memoryMiB: Math.round(memKiB / 1024),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadAverage: loadavg.split(" ").slice(0, 3).map(Number),
  };
}
