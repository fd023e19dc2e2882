/**
 * What the installer writes as hydra's meta conf, decided before anything
 * is written: the default conf found in the conf folder, unwrapped first
 * when it is another meta-plugin (install/multus.ts), wrapped with hydra's
 * keys and `--meta-json`, and checked against the meta conf's shape. A
 * conf that would be wrong — a key of the wrong type or one hydra does not
 * know in `--meta-json`, a meta-plugin hydra cannot unwrap — is refused
 * ({@link ConfRefused}): nothing is written and the installer stays not
 * ready with the reason. Problems in the default network's own conf are
 * only warned about: the runtime uses that conf today as it is.
 *
 * @module
 */

import { checkNetworkConfig } from "../engine/conf_check.ts";
import { META_SHAPE } from "../engine/meta_schema.ts";
import { checkShape } from "../pkg/schema.ts";
import type { JsonObject } from "../pkg/fields.ts";
import { ConfRefused, errorMessage } from "./error.ts";
import { type DefaultConf, metaPluginEntry, parseDefaultConf, renderMetaConf } from "./metaconf.ts";
import {
  foreignMeta,
  MetaPluginRefused,
  readDaemonConfig,
  unwrapMetaPlugin,
  type Unwrapped,
} from "./multus.ts";
import type { InstallOptions } from "./options.ts";

/** The meta conf to write and what the operator should know about it. */
export interface MetaPlan {
  bytes: Uint8Array;
  /** About the default network's conf (problems hydra passes on as they are). */
  warnings: string[];
  /** What unwrapping another meta-plugin translated or dropped (logged when the conf is written). */
  notes: string[];
}

/** Multus thick's daemon config, when the installer was given one. */
async function daemonConfigOf(opts: InstallOptions): Promise<JsonObject | undefined> {
  if (opts.multusDaemonConfig === undefined) return undefined;
  try {
    return await readDaemonConfig(opts.multusDaemonConfig);
  } catch (err) {
    throw new ConfRefused(
      `--multus-daemon-config ${opts.multusDaemonConfig} cannot be read: ${errorMessage(err)}`,
      { path: opts.multusDaemonConfig },
    );
  }
}

/** Unwraps the default conf when it is another meta-plugin; undefined when it is not one. */
async function unwrapIfMeta(
  opts: InstallOptions,
  found: DefaultConf,
): Promise<Unwrapped | undefined> {
  const foreign = foreignMeta(found.path, found.conf);
  if (!foreign) return undefined;
  try {
    const unwrapped = await unwrapMetaPlugin(foreign, opts.confDir, await daemonConfigOf(opts));
    const inner = unwrapped.defaultConf;
    if (inner) {
      parseDefaultConf(inner.path, JSON.stringify(inner.conf));
      const nested = foreignMeta(inner.path, inner.conf);
      if (nested) throw new MetaPluginRefused(nested, "it is wrapped by another meta-plugin");
    }
    return unwrapped;
  } catch (err) {
    if (err instanceof MetaPluginRefused) {
      throw new ConfRefused(err.message, { path: found.path, metaPlugin: foreign.kind });
    }
    throw err;
  }
}

/** The equivalent `--meta-json` of what was unwrapped, so the operator can pin it. */
function pinHint(unwrapped: Unwrapped): string {
  return `to keep these settings once the meta-plugin's conf is gone, pass --meta-json ` +
    JSON.stringify(unwrapped.metaKeys);
}

/** Plans hydra's meta conf over the default conf `found`; throws ConfRefused. */
export async function planMetaConf(opts: InstallOptions, found: DefaultConf): Promise<MetaPlan> {
  if (opts.metaExtraError) {
    throw new ConfRefused(`${opts.metaExtraError}; hydra's conf was not written`);
  }
  const unwrapped = await unwrapIfMeta(opts, found);
  if (unwrapped?.metaKeys.clusterNetwork !== undefined && opts.kubeconfig === undefined) {
    throw new ConfRefused(
      `${found.path} names its default network "${unwrapped.metaKeys.clusterNetwork}", which ` +
        "hydra resolves through the API server, and the installer runs with --no-kubeconfig",
      { path: found.path },
    );
  }
  const def = unwrapped ? unwrapped.defaultConf : found;
  const render = {
    binDir: opts.binDir,
    kubeconfig: opts.kubeconfig,
    unwrapped: unwrapped?.metaKeys,
    moreDelegates: unwrapped?.moreDelegates,
    cniVersion: typeof found.conf.cniVersion === "string" ? found.conf.cniVersion : undefined,
    extra: opts.metaExtra,
  };
  const entry = metaPluginEntry(def, render);
  const problems = checkShape(entry, META_SHAPE, "hydra").problems;
  if (problems.length > 0) {
    throw new ConfRefused(
      `hydra's conf would be invalid, so it was not written: ${
        problems.map((p) => p.message).join("; ")
      } (check --meta-json)`,
      { problems: problems.map((p) => p.path) },
    );
  }
  const warnings = def
    ? checkNetworkConfig(def.conf, "", { delegate: true }).problems.map((p) =>
      `default network conf ${def.path}: ${p.message}`
    )
    : [];
  const notes = unwrapped
    ? [
      `unwrapped ${found.path}: ${def ? `its default network is ${def.path}` : "no conf file"}`,
      ...unwrapped.notes,
      pinHint(unwrapped),
    ]
    : [];
  return { bytes: renderMetaConf(def, render), warnings, notes };
}
