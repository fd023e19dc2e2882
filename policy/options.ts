/**
 * Command line of `hydra policy sync`.
 *
 * @module
 */

import type { LogFormat, LogLevel } from "../pkg/log.ts";
import type { ListenAddress } from "../pkg/http.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";

/** The meta-CNI's default cache folder (its records are under it). */
export const DEFAULT_META_CACHE_DIR = "/var/lib/cni/hydra";
/** `hydra nri serve`'s default cache folder. */
export const DEFAULT_NRI_CACHE_DIR = "/var/lib/cni/hydra-nri";
/** Where the agent keeps the last valid version of each policy. */
export const DEFAULT_STATE_DIR = "/var/lib/cni/hydra-policy";
/** Health and metrics by default. */
export const DEFAULT_LISTEN = defaultHealthAddr("policy");

/** Options of `hydra policy sync`. */
export interface PolicySyncOptions {
  kubeconfig?: string;
  nodeName: string;
  /** Record folders read; "" in the command line leaves one out. */
  metaCacheDir?: string;
  nriCacheDir?: string;
  stateDir: string;
  listen?: ListenAddress;
  maxParallel: number;
  resyncMs: number;
  apiTimeoutMs: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
}

/** The help text. */
export const POLICY_HELP = `Usage: hydra policy sync [options]

Enforces MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1) on this node's pods:
for each pod's secondary interfaces on the networks a policy's
k8s.v1.cni.cncf.io/policy-for annotation names, an nftables table in the
pod's network namespace admits what the policies allow. The primary network
is never filtered. Tables stay in place while this program is not running.

Options:
  --kubeconfig PATH         API access (default: the in-cluster ServiceAccount)
  --node-name NAME          this node (default: $NODE_NAME, else the host name)
  --meta-cache-dir DIR      the meta-CNI's cache folder, whose attachment records
                            name this node's pods (default ${DEFAULT_META_CACHE_DIR}; "" for none)
  --nri-cache-dir DIR       the same for \`hydra nri serve\` (default ${DEFAULT_NRI_CACHE_DIR}; "" for none)
  --state-dir DIR           last valid version of each policy (default ${DEFAULT_STATE_DIR})
  --max-parallel N          pod namespaces written at once (default 32)
  --resync-interval SECONDS every table written again this often (default 300)
  --api-timeout SECONDS     deadline of each API request (default 5)
${operationHelp(DEFAULT_LISTEN, 28)}
  -h, --help                show this help
`;

/** A bad command line. */
export class PolicyUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PolicyUsageError";
  }
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new PolicyUsageError(`--${name} must be a positive number, got "${value}"`);
  }
  return n;
}

function folder(name: string, value: string | undefined, fallback: string): string | undefined {
  const v = value ?? fallback;
  if (v === "") return undefined;
  if (!v.startsWith("/")) throw new PolicyUsageError(`--${name} must be an absolute path`);
  return v;
}

/** Parses the command line (after `policy sync`). */
export function parsePolicyArgs(args: string[], env = Deno.env): PolicySyncOptions {
  const { values, ops } = parseRoleArgs(
    args,
    {
      kubeconfig: { type: "string" },
      "node-name": { type: "string" },
      "meta-cache-dir": { type: "string" },
      "nri-cache-dir": { type: "string" },
      "state-dir": { type: "string" },
      "max-parallel": { type: "string" },
      "resync-interval": { type: "string" },
      "api-timeout": { type: "string" },
    },
    DEFAULT_LISTEN,
    (message) => new PolicyUsageError(message),
  );
  const stateDir = folder("state-dir", values["state-dir"], DEFAULT_STATE_DIR);
  if (!stateDir) throw new PolicyUsageError("--state-dir must not be empty");
  return {
    kubeconfig: values.kubeconfig,
    nodeName: (values["node-name"] || env.get("NODE_NAME") || Deno.hostname()).toLowerCase(),
    metaCacheDir: folder("meta-cache-dir", values["meta-cache-dir"], DEFAULT_META_CACHE_DIR),
    nriCacheDir: folder("nri-cache-dir", values["nri-cache-dir"], DEFAULT_NRI_CACHE_DIR),
    stateDir,
    listen: ops.healthAddr,
    maxParallel: Math.floor(positive("max-parallel", values["max-parallel"], 32)),
    resyncMs: positive("resync-interval", values["resync-interval"], 300) * 1000,
    apiTimeoutMs: positive("api-timeout", values["api-timeout"], 5) * 1000,
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
    logFile: ops.logFile,
  };
}
