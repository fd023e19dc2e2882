/**
 * Shared pieces of the IPAM end-to-end tests: exec'ing an IPAM plugin as a
 * runtime would, snapshotting a store directory, and picking subnets.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { cniEnv, execWithStdin } from "../helpers/cni.ts";

/** The repository root. */
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);
/** hydra's IPAM, through the launcher symlink exactly as it is installed. */
export const hydraIpam = `${repoRoot}/bin/hydra-ipam`;
/** The reference host-local shipped by Debian. */
export const hostLocal = "/usr/lib/cni/host-local";
/** Debian's reference plugins. */
export const referenceDir = "/usr/lib/cni";

/** What a plugin invocation printed and how it exited. */
export interface ExecOutcome {
  code: number;
  /** stdout parsed as JSON, undefined when empty. */
  json?: Record<string, unknown>;
  stderr: string;
}

/** The CNI_* variables of one invocation. */
export interface CniEnv {
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  path?: string;
}

/**
 * Execs `binary` with a runtime's minimal environment and `config` on
 * stdin. Whatever the outcome, stdout must be JSON or nothing.
 */
export async function execPlugin(
  binary: string,
  env: CniEnv,
  config: unknown,
): Promise<ExecOutcome> {
  const vars = cniEnv({ ...env, path: [env.path ?? referenceDir] });
  const out = await execWithStdin(binary, [], vars, JSON.stringify(config));
  if (out.stdout.trim() && out.json === undefined) {
    throw new SyntaxError(`${binary} printed something other than JSON: ${out.stdout}`);
  }
  return { code: out.code, json: out.json, stderr: out.stderr };
}

/** Names and contents of a store directory, the lock file left out. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name !== "lock") names.push(e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out;
    throw err;
  }
  for (const name of names.sort()) out[name] = await Deno.readTextFile(`${dir}/${name}`);
  return out;
}

/** Reservation file names (addresses) of a snapshot. */
export function reservedNames(snap: Record<string, string>): string[] {
  return Object.keys(snap).filter((n) => !n.startsWith("last_reserved_ip.")).sort();
}

/** A random /24 in 100.64.0.0/10, out of the way of the usual private ranges. */
export function randomV4Subnet24(): string {
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  return `100.${64 + (a % 64)}.${b}.0/24`;
}

/** A random /64 in fd00::/8. */
export function randomV6Subnet64(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint16Array(3));
  return `fd${(a & 0xff).toString(16).padStart(2, "0")}:${b.toString(16)}:${c.toString(16)}::/64`;
}

/** Runs `fn` with up to `limit` calls in flight at once; results in input order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
