/**
 * What `hydra doctor` says about another meta-plugin in the CNI conf
 * folder: which one (Multus thin or thick, or another), and what
 * `hydra install` will do with it — unwrap it (its default network and
 * settings) or refuse, with the reason — judged by the installer's own code
 * (install/multus.ts). Leftovers of Multus (its kubeconfig under
 * `multus.d/`) are mentioned too.
 *
 * @module
 */

import { join } from "node:path";
import type { JsonObject } from "../pkg/fields.ts";
import {
  foreignMeta,
  MetaPluginRefused,
  MIGRATION_GUIDE,
  unwrapMetaPlugin,
} from "../install/multus.ts";
import type { Check } from "./doctor_check.ts";

const NAME = "other meta-plugin";

/**
 * The verdict on one conf that is another meta-plugin; undefined when it is
 * not one. `folder` is the conf folder it lies in (for the paths it names).
 */
export async function multusConfCheck(
  path: string,
  conf: JsonObject,
  folder: string | undefined,
): Promise<Check | undefined> {
  const found = foreignMeta(path, conf);
  if (!found) return undefined;
  try {
    const unwrapped = await unwrapMetaPlugin(found, folder ?? join(path, ".."));
    const target = unwrapped.defaultConf?.path ??
      `"${String(unwrapped.metaKeys.clusterNetwork)}" (resolved by hydra)`;
    return {
      name: NAME,
      status: "warn",
      detail: `${path} is Multus (${found.kind}); hydra install will unwrap it: default ` +
        `network ${target}; ${unwrapped.notes.join("; ") || "nothing dropped"}`,
      hint: `switch the node over as ${MIGRATION_GUIDE} describes`,
    };
  } catch (err) {
    if (!(err instanceof MetaPluginRefused)) throw err;
    return {
      name: NAME,
      status: "fail",
      detail: err.message,
      hint: found.kind === "multus-thick"
        ? "give hydra install Multus' daemon config: --multus-daemon-config (the " +
          "multus-daemon-config ConfigMap, mounted)"
        : `change the conf as the reason says, then run hydra doctor again`,
    };
  }
}

/** The folder's meta-plugin verdict (on the file the runtime uses) and Multus' leftovers. */
export async function multusCheck(
  confDir: string,
  names: string[],
): Promise<Check | undefined> {
  const first = names.find((n) => n !== "00-hydra.conflist");
  if (first) {
    try {
      const conf = JSON.parse(await Deno.readTextFile(join(confDir, first)));
      const verdict = await multusConfCheck(join(confDir, first), conf, confDir);
      if (verdict) return verdict;
    } catch {
      // Unreadable: the conf dir check says so.
    }
  }
  const kubeconfig = join(confDir, "multus.d", "multus.kubeconfig");
  if (await Deno.lstat(kubeconfig).then(() => true, () => false)) {
    return {
      name: NAME,
      status: "warn",
      detail: `${kubeconfig} is there: Multus thin was installed on this node, its conf is gone`,
      hint: "remove the folder once no pod Multus attached is left on the node",
    };
  }
  return undefined;
}
