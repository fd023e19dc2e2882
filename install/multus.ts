/**
 * Another meta-plugin in the node's conf folder: Multus thin (`"type":
 * "multus"`), Multus thick (`"type": "multus-shim"`, the conf its daemon
 * writes) or a conf that is one by its content (`delegates`,
 * `clusterNetwork`, `multusNamespace`). hydra never wraps one (every pod
 * would get its networks twice, or hydra's not at all): it either unwraps
 * it — takes the default network it delegates to and its settings,
 * translated to hydra's keys — or refuses with the reason and a pointer to
 * docs/migrating-from-multus.md.
 *
 * What can be read on the node:
 * - thin: everything is in its conf (`00-multus.conf`, written by its
 *   entrypoint: the default network inline in `delegates`, or named by
 *   `clusterNetwork`);
 * - thick: the shim's conf holds only part of the settings — its daemon
 *   keeps the rest (`defaultNetworks`, `systemNamespaces`, `multusNamespace`,
 *   `confDir`, `readinessindicatorfile`, `chrootDir`, …) in
 *   `daemon-config.json` from the `multus-daemon-config` ConfigMap, mounted
 *   into the daemon's container only, and its `clusterNetwork` is a path in
 *   that container (`/host/etc/cni/net.d/…`). hydra unwraps it only when
 *   given that file (`--multus-daemon-config`, the ConfigMap mounted into
 *   the installer); the daemon config's keys win over the shim conf's, as
 *   in Multus, and paths under its `multusAutoconfigDir`/`cniConfigDir` are
 *   read in the node's conf folder.
 *
 * Keys are translated by {@link TRANSLATION}: carried as they are (hydra
 * reads them with Multus's meaning), replaced by hydra's own (kubeconfig,
 * logging, socket), or refused (`auxiliaryCNIChainName`: hydra runs no
 * auxiliary chain). A key of neither kind is refused too: hydra cannot tell
 * what dropping it would change.
 *
 * @module
 */

import { basename, join } from "node:path";
import { isJsonObject, type JsonObject } from "../pkg/fields.ts";
import { CNI_DIR_MEANING } from "../engine/meta_schema.ts";

/** Where the guide is, for every refusal. */
export const MIGRATION_GUIDE = "docs/migrating-from-multus.md";

/** Multus's default `cniDir`: its delegate cache, which hydra reads on DEL. */
export const MULTUS_DEFAULT_CNI_DIR = "/var/lib/cni/multus";

/** Which meta-plugin a conf is. */
export type MetaPluginKind = "multus-thin" | "multus-thick" | "meta-plugin";

/** A meta-plugin's conf as found. */
export interface ForeignMeta {
  kind: MetaPluginKind;
  /** The conf file. */
  path: string;
  /** Its meta-plugin object (for a conflist: its first plugin, with the list's cniVersion). */
  plugin: JsonObject;
}

/** What unwrapping gives hydra. */
export interface Unwrapped {
  /** The default network's conf and where it was read, when the meta-plugin names one on disk. */
  defaultConf?: { path: string; conf: JsonObject };
  /** Further networks every pod gets (Multus's `delegates` after the first). */
  moreDelegates: JsonObject[];
  /** Keys for hydra's plugin entry (Kubernetes mode, cniDir, binDir, capabilities). */
  metaKeys: JsonObject;
  /** What was translated or dropped, one line each (logged). */
  notes: string[];
}

/** A meta-plugin hydra will not take over; the message says why and what to do. */
export class MetaPluginRefused extends Error {
  constructor(readonly foreign: ForeignMeta, reason: string) {
    super(
      `${foreign.path} is ${describe(foreign.kind)}; hydra does not wrap another meta-plugin ` +
        `and cannot unwrap this one: ${reason}. See ${MIGRATION_GUIDE}`,
    );
    this.name = "MetaPluginRefused";
  }
}

function describe(kind: MetaPluginKind): string {
  if (kind === "multus-thin") return 'Multus thin (type "multus")';
  if (kind === "multus-thick") return 'Multus thick (type "multus-shim", written by its daemon)';
  return "another meta-plugin (it delegates to other networks)";
}

/** Keys whose presence makes a conf a meta-plugin whatever its type says. */
const META_MARKERS = ["delegates", "clusterNetwork", "multusNamespace", "defaultNetworks"];

/** The meta-plugin a parsed conf is, undefined when it is an ordinary network (or hydra's). */
export function metaPluginKind(conf: unknown): MetaPluginKind | undefined {
  const plugin = firstPlugin(conf);
  if (!plugin || plugin.type === "hydra") return undefined;
  if (plugin.type === "multus") return "multus-thin";
  if (plugin.type === "multus-shim") return "multus-thick";
  return META_MARKERS.some((k) => plugin[k] !== undefined) ? "meta-plugin" : undefined;
}

/** A conf's plugin object: the conf itself, or a conflist's first plugin with the list's version. */
function firstPlugin(conf: unknown): JsonObject | undefined {
  if (!isJsonObject(conf)) return undefined;
  if (!Array.isArray(conf.plugins)) return conf;
  const first = conf.plugins[0];
  if (!isJsonObject(first)) return undefined;
  return { cniVersion: conf.cniVersion, ...first };
}

/** Multus's own file names (thin writes either; thick `00-multus.conf`). */
const MULTUS_FILE = /^00-multus\.conf(list)?$/;

/** The foreign meta-plugin of a conf file (by its content, or by Multus's file name), or undefined. */
export function foreignMeta(path: string, conf: unknown): ForeignMeta | undefined {
  const plugin = firstPlugin(conf);
  if (!plugin || plugin.type === "hydra") return undefined;
  const kind = metaPluginKind(conf) ??
    (MULTUS_FILE.test(basename(path)) ? "meta-plugin" : undefined);
  return kind ? { kind, path, plugin } : undefined;
}

/** How one Multus key becomes hydra's. */
type Rule =
  | { carry: true; why?: string }
  | { drop: string }
  | { refuse: string }
  | { special: true };

const CARRY: Rule = { carry: true };

/**
 * Every key of Multus's conf and its thick daemon's config, and what hydra
 * does with it.
 */
export const TRANSLATION: Readonly<Record<string, Rule>> = {
  // Read by hydra with Multus's meaning.
  defaultNetworks: CARRY,
  multusNamespace: CARRY,
  systemNamespaces: CARRY,
  namespaceIsolation: CARRY,
  globalNamespaces: CARRY,
  confDir: CARRY,
  readinessindicatorfile: CARRY,
  cniDir: { carry: true, why: CNI_DIR_MEANING },
  // Turned into hydra's keys.
  clusterNetwork: { special: true },
  delegates: { special: true },
  capabilities: { special: true },
  binDir: { special: true },
  multusMasterCNI: { special: true },
  cniVersion: { special: true },
  // hydra's own take their place.
  type: { drop: "hydra's conf has its own type" },
  name: { drop: 'hydra\'s conf list is named "hydra"' },
  kubeconfig: { drop: "hydra uses the kubeconfig its installer writes" },
  logFile: { drop: "hydra logs per its own conf (--meta-json logFile)" },
  logLevel: { drop: "hydra logs per its own conf (--meta-json logLevel)" },
  logToStderr: { drop: "hydra logs per its own conf" },
  logOptions: { drop: "hydra does not rotate its log file" },
  retryDeleteOnError: { drop: "hydra always keeps what a DEL could not delete for the next DEL" },
  allowTryDeleteOnErr: { drop: "hydra always keeps what a DEL could not delete for the next DEL" },
  cniConf: {
    drop: "written by Multus' thin entrypoint and read by nothing (Multus reads confDir)",
  },
  // Multus thick's daemon and shim plumbing, which hydra's node daemon does its own way.
  daemonSocketDir: { drop: "Multus thick's socket" },
  socketDir: { drop: "Multus thick's socket" },
  chrootDir: {
    drop: "Multus thick's container layout; hydra's daemon sets its own chrootDir when it " +
      "runs delegates (daemonExec)",
  },
  metricsPort: { drop: "Multus thick's metrics; hydra's daemon has its own endpoint" },
  enablePprof: { drop: "Multus thick's profiling endpoint" },
  connectionLimit: { drop: "Multus thick's socket limit" },
  perNodeCertificate: { drop: "hydra uses its installer's kubeconfig" },
  cniConfigDir: { drop: "where Multus thick writes its conf (hydra: --conf-dir)" },
  multusAutoconfigDir: { drop: "where Multus thick reads the default network (hydra: --conf-dir)" },
  multusConfigFile: { drop: "Multus thick's conf generation" },
  forceCNIVersion: { drop: "Multus thick's conf generation" },
  overrideNetworkName: { drop: "Multus thick's conf generation" },
  // Not available in hydra.
  auxiliaryCNIChainName: {
    refuse: '"auxiliaryCNIChainName" is set and hydra runs no auxiliary chain: add those ' +
      "plugins to the default network's conflist, then remove the key",
  },
};

/** The merged settings of a thick install: the shim conf under the daemon config's keys. */
function thickSettings(found: ForeignMeta, daemonConfig?: JsonObject): JsonObject {
  if (!daemonConfig) {
    throw new MetaPluginRefused(
      found,
      "Multus thick keeps part of its settings (defaultNetworks, systemNamespaces, " +
        "multusNamespace, confDir, readinessindicatorfile) in its daemon config " +
        "(daemon-config.json of the multus-daemon-config ConfigMap), which is not on the node; " +
        "mount that ConfigMap into the installer and pass --multus-daemon-config, or remove " +
        "Multus from the node first",
    );
  }
  return { ...found.plugin, ...daemonConfig };
}

/** Where the meta-plugin's paths are on the node: its folders in the daemon's container → confDir. */
function nodePath(path: string, settings: JsonObject, confDir: string): string {
  for (const key of ["multusAutoconfigDir", "cniConfigDir"]) {
    const dir = settings[key];
    if (typeof dir !== "string" || dir === "") continue;
    const prefix = dir.replace(/\/+$/, "") + "/";
    if (path.startsWith(prefix)) return join(confDir, path.slice(prefix.length));
  }
  return path;
}

/** Reads a conf file (or a folder's first conf) the meta-plugin names as its default network. */
async function readNamedConf(
  found: ForeignMeta,
  path: string,
): Promise<{ path: string; conf: JsonObject }> {
  let target = path;
  try {
    if ((await Deno.stat(path)).isDirectory) {
      const names = [];
      for await (const e of Deno.readDir(path)) {
        if (e.isFile && /\.(conf|conflist|json)$/.test(e.name)) names.push(e.name);
      }
      names.sort();
      if (names.length === 0) throw new Error("the folder holds no conf");
      target = join(path, names[0]);
    }
    const conf = JSON.parse(await Deno.readTextFile(target));
    if (!isJsonObject(conf)) throw new Error("not a JSON object");
    return { path: target, conf };
  } catch (err) {
    throw new MetaPluginRefused(
      found,
      `its default network ${path} cannot be read on the node (${
        err instanceof Error ? err.message : err
      })`,
    );
  }
}

/** The default network and further delegates, from `clusterNetwork` or `delegates`. */
async function defaultNetwork(
  found: ForeignMeta,
  settings: JsonObject,
  confDir: string,
  out: Unwrapped,
): Promise<void> {
  const master = settings.multusMasterCNI;
  const cluster = typeof settings.clusterNetwork === "string" && settings.clusterNetwork !== ""
    ? settings.clusterNetwork
    : typeof master === "string" && master !== ""
    ? join(confDir, basename(master))
    : undefined;
  if (cluster !== undefined) {
    if (!cluster.includes("/")) {
      // A NAD's or a conf's name: hydra resolves it in Kubernetes mode, as Multus does.
      out.metaKeys.clusterNetwork = cluster;
      out.notes.push(`clusterNetwork "${cluster}" is resolved by hydra as Multus resolves it`);
      return;
    }
    const path = nodePath(cluster, settings, confDir);
    out.defaultConf = await readNamedConf(found, path);
    if (path !== cluster) out.notes.push(`clusterNetwork ${cluster} is ${path} on the node`);
    return;
  }
  const delegates = settings.delegates;
  if (!Array.isArray(delegates) || delegates.length === 0 || !delegates.every(isJsonObject)) {
    throw new MetaPluginRefused(
      found,
      'it names its default network by neither "clusterNetwork" nor "delegates"',
    );
  }
  out.defaultConf = { path: `${found.path} (delegates[0])`, conf: delegates[0] as JsonObject };
  out.moreDelegates = delegates.slice(1) as JsonObject[];
}

/** Applies {@link TRANSLATION} to every key; throws on a refused or unknown one. */
function translateKeys(found: ForeignMeta, settings: JsonObject, out: Unwrapped): void {
  for (const [key, value] of Object.entries(settings)) {
    const rule = Object.hasOwn(TRANSLATION, key) ? TRANSLATION[key] : undefined;
    if (!rule) {
      throw new MetaPluginRefused(found, `it sets "${key}", which hydra does not know`);
    }
    if ("refuse" in rule) throw new MetaPluginRefused(found, rule.refuse);
    if ("drop" in rule) {
      if (key !== "type" && key !== "name") out.notes.push(`${key} not carried: ${rule.drop}`);
    } else if ("carry" in rule) {
      out.metaKeys[key] = value;
      if (rule.why) out.notes.push(`${key} carried: ${rule.why}`);
    }
  }
}

/**
 * Unwraps a foreign meta-plugin: its default network (a conf file hydra
 * then wraps as usual, or a name hydra resolves in Kubernetes mode), its
 * further delegates and its settings as hydra's keys. `confDir` is the
 * node's conf folder; `daemonConfig` Multus thick's daemon-config.json.
 * Throws {@link MetaPluginRefused}.
 */
export async function unwrapMetaPlugin(
  found: ForeignMeta,
  confDir: string,
  daemonConfig?: JsonObject,
): Promise<Unwrapped> {
  if (found.kind === "meta-plugin") {
    throw new MetaPluginRefused(found, "hydra only knows how to unwrap Multus");
  }
  const settings = found.kind === "multus-thick"
    ? thickSettings(found, daemonConfig)
    : found.plugin;
  const out: Unwrapped = { moreDelegates: [], metaKeys: {}, notes: [] };
  translateKeys(found, settings, out);
  await defaultNetwork(found, settings, confDir, out);
  if (out.metaKeys.cniDir === undefined) out.metaKeys.cniDir = MULTUS_DEFAULT_CNI_DIR;
  if (typeof settings.binDir === "string" && settings.binDir !== "") {
    out.metaKeys.binDir = settings.binDir;
  }
  if (isJsonObject(settings.capabilities)) out.metaKeys.capabilities = settings.capabilities;
  return out;
}

/** Reads Multus thick's daemon config; throws a plain Error naming the file. */
export async function readDaemonConfig(path: string): Promise<JsonObject> {
  const text = await Deno.readTextFile(path);
  const parsed = JSON.parse(text);
  if (!isJsonObject(parsed)) throw new Error(`${path} is not a JSON object`);
  return parsed;
}
