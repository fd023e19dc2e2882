/**
 * The meta-CNI conf (`"type": "hydra"`) as a {@link Shape}: hydra's own
 * keys, the Kubernetes-mode keys under Multus's names, and Multus's other
 * spellings, each accepted with its meaning here or named as unsupported
 * with what to do instead. Data only: the exec path loads it to warn about
 * unknown keys; doctor and the installer check whole confs against it.
 *
 * @module
 */

import { PLUGIN_KEYS } from "../cni/conf_schema.ts";
import type { KeySpec, Shape } from "../pkg/schema.ts";

const STRING: KeySpec = { type: "string" };
const BOOL: KeySpec = { type: "boolean" };
const SECONDS: KeySpec = { type: "number" };

/** hydra's log levels and Multus's (`verbose` reads as debug, `panic` as error). */
export const META_LOG_LEVELS = ["debug", "info", "warn", "error", "off", "verbose", "panic"];

/** Multus's level names as hydra's. */
export const MULTUS_LOG_LEVELS: Readonly<Record<string, "debug" | "error">> = {
  verbose: "debug",
  panic: "error",
};

/** What Multus's `cniDir` means to hydra. */
export const CNI_DIR_MEANING = "Multus' delegate cache (default /var/lib/cni/multus): " +
  "a DEL hydra has no record for deletes what Multus attached from it, as Multus would";

/** The keys of the meta-CNI conf. */
export const META_KEYS: Readonly<Record<string, KeySpec>> = {
  ...PLUGIN_KEYS,
  ipam: {
    type: "any",
    unsupported: 'the meta-CNI has no addresses of its own; put "ipam" into a delegate',
  },
  // Where the networks come from.
  delegates: { type: "list", items: { type: "object" } },
  delegatesFromConfDir: STRING,
  skipDefaultNetwork: BOOL,
  // The engine.
  cacheDir: STRING,
  binDir: STRING,
  delegateTimeout: SECONDS,
  chrootDir: STRING,
  logFile: STRING,
  logLevel: { type: "string", values: META_LOG_LEVELS },
  logToStderr: {
    type: "boolean",
    foreign: "Multus: with a logFile, lines also go to stderr (false: never to stderr)",
  },
  // The node daemon.
  daemonExec: BOOL,
  daemonExecTimeout: SECONDS,
  daemonSocket: STRING,
  // Where the path keys of network definitions from the API may point (kube/nad_paths.ts).
  nadPathRoots: {
    type: "object",
    shape: {
      name: "nadPathRoots",
      keys: { state: { type: "strings" }, logs: { type: "strings" }, read: { type: "strings" } },
    },
  },
  // Kubernetes mode, Multus's keys and meanings.
  kubeconfig: STRING,
  clusterNetwork: STRING,
  defaultNetworks: { type: "strings" },
  confDir: STRING,
  namespaceIsolation: BOOL,
  globalNamespaces: STRING,
  systemNamespaces: { type: "strings" },
  multusNamespace: STRING,
  readinessindicatorfile: STRING,
  apiTimeout: SECONDS,
  podResourcesSocket: STRING,
  // Multus's other keys.
  cniDir: { type: "string", foreign: `Multus: ${CNI_DIR_MEANING}` },
  retryDeleteOnError: {
    type: "boolean",
    foreign: "Multus: always on in hydra (a DEL keeps what it could not delete for the next DEL)",
  },
  auxiliaryCNIChainName: {
    type: "any",
    unsupported: "hydra runs no auxiliary chain; add those plugins to the default " +
      "network's conflist instead",
  },
  logOptions: {
    type: "any",
    unsupported: "hydra does not rotate its log file; rotate logFile with logrotate " +
      "(copytruncate)",
  },
  daemonSocketDir: {
    type: "any",
    unsupported: "Multus thick's shim socket; hydra's node daemon listens on \"daemonSocket\"",
  },
};

/** The meta-CNI conf. */
export const META_SHAPE: Shape = { name: "hydra meta-CNI conf", keys: META_KEYS };
