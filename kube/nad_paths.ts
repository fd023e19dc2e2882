/**
 * What a network definition from the API server (a NetworkAttachmentDefinition's
 * `spec.config`, an older Network object's `args`) may make a root process on
 * the node touch. Whoever may create one in a namespace a pod selects is
 * otherwise root on every node: a delegate's `ipam.dataDir` is where files
 * are created, `logFile` is appended to, `ipam.kubeconfig` is read for
 * credentials. So every path key hydra (or a reference plugin) interprets
 * must lie under the roots the node allows for its kind, and a definition
 * using `type: "hydra"` (the meta-CNI itself, whose own keys name its bin
 * dir, cache and credentials) is refused.
 *
 * The roots come from the node's meta-CNI conf (`nadPathRoots`), else the
 * defaults below. Keys of third-party plugins that hydra does not know are
 * theirs to check.
 *
 * @module
 */

import type { ConfList } from "../cni/conf.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { fields, isJsonObject } from "../pkg/fields.ts";
import { confinePath, PathNotAllowedError } from "../pkg/path_policy.ts";

/** Roots per kind of path. */
export interface NadPathRoots {
  /** Folders a plugin writes state into: `dataDir`, `cacheDir`. */
  state: string[];
  /** Where log files may be: `logFile`, `log_file`. */
  logs: string[];
  /** Files read or connected to (credentials, resolver config, the node daemon): `kubeconfig`, `resolvConf`, `daemonSocket`. */
  read: string[];
}

/** The kinds of path, as `nadPathRoots` names them. */
const KINDS = ["state", "logs", "read"] as const;

/** The roots when the node's conf names none: where CNI plugins keep their files by default. */
export const DEFAULT_NAD_PATH_ROOTS: Readonly<NadPathRoots> = Object.freeze({
  state: ["/var/lib/cni", "/run/cni", "/var/run/cni"],
  logs: ["/var/log"],
  read: ["/etc/cni/net.d", "/etc/resolv.conf", "/run/systemd/resolve", "/run/hydra"],
});

/** A path key: where in a plugin conf it sits, and its kind. */
interface PathKey {
  path: readonly string[];
  kind: keyof NadPathRoots;
}

/**
 * The path keys checked in every plugin of a definition: the reference
 * plugins' (host-local and tuning `dataDir`, `resolvConf`), hydra's
 * (`kube-node`'s `kubeconfig`, `daemonSocket`), and common ones of the
 * ecosystem (whereabouts' `log_file`, `kubernetes.kubeconfig`,
 * `configuration_path`).
 */
const PATH_KEYS: readonly PathKey[] = [
  { path: ["dataDir"], kind: "state" },
  { path: ["cacheDir"], kind: "state" },
  { path: ["logFile"], kind: "logs" },
  { path: ["log_file"], kind: "logs" },
  { path: ["kubeconfig"], kind: "read" },
  { path: ["ipam", "dataDir"], kind: "state" },
  { path: ["ipam", "resolvConf"], kind: "read" },
  { path: ["ipam", "kubeconfig"], kind: "read" },
  { path: ["ipam", "daemonSocket"], kind: "read" },
  { path: ["ipam", "log_file"], kind: "logs" },
  { path: ["ipam", "configuration_path"], kind: "read" },
  { path: ["ipam", "kubernetes", "kubeconfig"], kind: "read" },
];

function at(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const k of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

function refuse(where: string, msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `${where}: ${msg}`);
}

/**
 * Checks every plugin of a definition's conf list against `roots`; throws
 * CNI code 7 naming the definition, the plugin and the key for a path
 * outside its roots, a path key that is not a string, or `type: "hydra"`.
 *
 * @param where names the definition in errors ("NetworkAttachmentDefinition ns/name")
 */
export function checkNadPaths(list: ConfList, roots: NadPathRoots, where: string): void {
  list.plugins.forEach((plugin, i) => {
    const name = list.plugins.length > 1 ? `${where} plugins[${i}]` : where;
    if (plugin.type === "hydra") {
      throw refuse(
        name,
        `type "hydra" (the meta-CNI itself) cannot be used from the API; its settings are the node's`,
      );
    }
    for (const key of PATH_KEYS) {
      const value = at(plugin, key.path);
      if (value === undefined || value === null || value === "") continue;
      const field = key.path.join(".");
      if (typeof value !== "string") throw refuse(name, `${field} must be a string path`);
      try {
        confinePath(value, roots[key.kind]);
      } catch (err) {
        if (!(err instanceof PathNotAllowedError)) throw err;
        throw refuse(
          name,
          `${field} ${err.message} for ${key.kind} paths of network definitions from the API ` +
            `(the node's nadPathRoots.${key.kind})`,
        );
      }
    }
  });
}

/**
 * Reads `nadPathRoots` of the node's meta-CNI conf: an object with any of
 * `state`, `logs`, `read`, each a list of absolute paths; kinds left out
 * keep their defaults. CNI code 6 for a wrong type, 7 for a relative root.
 */
export function parseNadPathRoots(raw: unknown): NadPathRoots {
  const roots: NadPathRoots = {
    state: [...DEFAULT_NAD_PATH_ROOTS.state],
    logs: [...DEFAULT_NAD_PATH_ROOTS.logs],
    read: [...DEFAULT_NAD_PATH_ROOTS.read],
  };
  if (raw === undefined || raw === null) return roots;
  if (!isJsonObject(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, `"nadPathRoots" must be an object`);
  }
  const f = fields(raw, {
    where: "nadPathRoots",
    fail: (p) => new CniError(ErrorCode.DecodingFailure, `"${p.path}" must be ${p.expected}`),
  });
  for (const kind of Object.keys(raw)) {
    if (!(KINDS as readonly string[]).includes(kind)) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `"nadPathRoots" has unknown kind "${kind}" (expected ${KINDS.join(", ")})`,
      );
    }
  }
  for (const kind of KINDS) {
    const list = f.strings(kind);
    if (list === undefined) continue;
    const relative = list.find((p) => !p.startsWith("/"));
    if (relative !== undefined) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `"${f.path(kind)}" entry "${relative}" is not an absolute path`,
      );
    }
    roots[kind] = list;
  }
  return roots;
}

/**
 * `--nad-path-roots JSON` of a role's command line (nri serve, dra serve):
 * the same object as `nadPathRoots`. Throws an Error saying what is wrong.
 */
export function nadPathRootsFlag(text: string): NadPathRoots {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`--nad-path-roots is not JSON: ${text}`);
  }
  try {
    return parseNadPathRoots(raw);
  } catch (err) {
    throw new Error(`--nad-path-roots: ${(err as Error).message}`);
  }
}
