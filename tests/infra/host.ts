/**
 * Host state the test peers leave behind and must clean up: mounts below a folder and cgroups
 * (cgroup v1 hierarchies and the unified one, cgroupfs layout).
 *
 * @module
 */

import { join } from "node:path";
import { runCommand } from "./process.ts";

/** Cgroup parents the test peers create all start with this. */
export const CGROUP_PREFIX = "/hydra-test-";

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const text = Deno.readTextFileSync("/proc/self/mountinfo");
  const points = text.split("\n").filter(Boolean).map((line) =>
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    line.split(" ")[4].replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)))
  );
  return points
    .filter((p) => p === dir || p.startsWith(dir + "/"))
    .sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything mounted at or below `dir`; throws if something stays mounted. */
export async function unmountUnder(dir: string): Promise<void> {
  for (const point of mountsUnder(dir)) {
    await runCommand("umount", ["--lazy", point], { allowFailure: true });
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted: ${left.join(", ")}`);
}

/** Mounted cgroup hierarchies (the v2 root or v1 controllers and the unified one). */
function cgroupHierarchies(): string[] {
  const candidates = ["/sys/fs/cgroup"];
  for (const entry of Deno.readDirSync("/sys/fs/cgroup")) {
    if (entry.isDirectory) candidates.push(join("/sys/fs/cgroup", entry.name));
  }
  return candidates.filter((dir) => {
    try {
      return Deno.statSync(join(dir, "cgroup.procs")).isFile;
    } catch {
      return false;
    }
  });
}

/** Creates a cgroup in every hierarchy (kubelet requires its cgroup root to exist). */
export async function createCgroups(parent: string): Promise<void> {
  if (!parent.startsWith(CGROUP_PREFIX)) throw new Error(`refusing to create cgroup ${parent}`);
  for (const root of cgroupHierarchies()) await Deno.mkdir(join(root, parent), { recursive: true });
}

/** Removes `<hierarchy>/<parent>` and everything below it in every cgroup hierarchy. */
export async function removeCgroups(parent: string): Promise<void> {
  if (!parent.startsWith(CGROUP_PREFIX)) throw new Error(`refusing to remove cgroup ${parent}`);
  for (const root of cgroupHierarchies()) {
    const top = join(root, parent);
    try {
      if (!Deno.statSync(join(top, "cgroup.procs")).isFile) continue;
    } catch {
      continue;
    }
    await removeCgroupTree(top);
  }
}

async function removeCgroupTree(path: string): Promise<void> {
  for (const entry of Deno.readDirSync(path)) {
    if (entry.isDirectory) await removeCgroupTree(join(path, entry.name));
  }
  // A cgroup directory is removed with rmdir even though it still lists its control files.
  await Deno.remove(path);
}
