/**
 * `hydra doctor --conf FILE|DIR`: network confs checked against what hydra
 * reads (engine/conf_check.ts), every problem an error with its key path —
 * the strict reading of what the exec path only warns about — and a
 * Multus conf judged as `hydra install` would judge it.
 *
 * @module
 */

import { basename, join } from "node:path";
import { checkNetworkConfig } from "../engine/conf_check.ts";
import { isJsonObject } from "../pkg/fields.ts";
import type { Check } from "./doctor_check.ts";
import { multusConfCheck } from "./doctor_multus.ts";

const CONF_FILE = /\.(conf|conflist|json)$/;

/** The files to check: the file itself, or a folder's conf files sorted by name. */
async function confFiles(path: string): Promise<string[] | Check> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (err) {
    return { name: path, status: "fail", detail: `cannot read: ${(err as Error).message}` };
  }
  if (!st.isDirectory) return [path];
  const names = (await Array.fromAsync(Deno.readDir(path)))
    .filter((e) => !e.isDirectory && CONF_FILE.test(e.name))
    .map((e) => e.name)
    .sort();
  if (names.length === 0) {
    return { name: path, status: "warn", detail: "holds no .conf, .conflist or .json file" };
  }
  return names.map((n) => join(path, n));
}

/** The checks of one conf file: one per problem, or one saying it is fine. */
async function checkFile(path: string, folder: string | undefined): Promise<Check[]> {
  let conf: unknown;
  try {
    conf = JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    return [{ name: path, status: "fail", detail: `not JSON: ${(err as Error).message}` }];
  }
  if (!isJsonObject(conf)) return [{ name: path, status: "fail", detail: "not a JSON object" }];
  const multus = await multusConfCheck(path, conf, folder);
  if (multus) return [multus];
  const { problems, notes } = checkNetworkConfig(conf, "", { delegate: folder !== undefined });
  const checks: Check[] = problems.map((p) => ({
    name: path,
    status: "fail" as const,
    detail: p.message,
    hint: p.kind === "unknown" ? "fix the key's spelling, or remove it" : undefined,
  }));
  for (const n of notes) checks.push({ name: path, status: "ok", detail: n.message });
  if (problems.length === 0) {
    checks.unshift({ name: path, status: "ok", detail: `${basename(path)}: nothing wrong` });
  }
  return checks;
}

/** Checks the conf file or the folder's conf files at `path`. */
export async function checkConfPath(path: string): Promise<Check[]> {
  const files = await confFiles(path);
  if (!Array.isArray(files)) return [files];
  const folder = files.length === 1 && files[0] === path ? undefined : path;
  const checks: Check[] = [];
  for (const file of files) checks.push(...await checkFile(file, folder));
  return checks;
}
