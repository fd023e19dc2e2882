/**
 * `hydra install` flags: parsing, defaults and help.
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "node:path";
import type { ListenAddress } from "../pkg/http.ts";
import type { LogFormat, LogLevel } from "../pkg/log.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";
import { InstallError } from "./error.ts";
import { SERVICE_ACCOUNT_DIR } from "./kubeconfig.ts";
import type { NodeTokenConfig } from "./node_token.ts";

/** What hydra is installed as on the node. */
export type InstallMode = "meta" | "nri" | "router";

/** Every mode, for validation and help. */
export const INSTALL_MODES: readonly InstallMode[] = ["meta", "nri", "router"];

/** Parsed and defaulted options of `hydra install`. */
export interface InstallOptions {
  help: boolean;
  mode: InstallMode;
  binDir: string;
  confDir: string;
  /** Node kubeconfig path; undefined with `--no-kubeconfig`. */
  kubeconfig?: string;
  /** Holds the manifest (and, by default, the kubeconfig). */
  stateDir: string;
  /** The install manifest path (in `stateDir`). */
  manifest: string;
  /** The executable to copy; undefined means "this hydra". */
  source?: string;
  /** File name of the meta-CNI conf in `confDir`. */
  confName: string;
  /** Pins the default conf (name in `confDir` or path) instead of picking the first. */
  defaultConf?: string;
  /** How long to wait for the default conf to appear, ms. */
  defaultConfTimeoutMs: number;
  /** Extra keys for hydra's plugin entry in the meta conf. */
  metaExtra: Record<string, unknown>;
  /**
   * Why `--meta-json` is unusable (not JSON, not an object); the meta conf
   * is then refused (see ConfRefused) rather than the installer exiting.
   */
  metaExtraError?: string;
  /** Multus thick's daemon-config.json, for unwrapping its conf (install/multus.ts). */
  multusDaemonConfig?: string;
  tokenFile: string;
  caFile: string;
  server?: string;
  /**
   * The node kubeconfig gets a token minted for this ServiceAccount, bound
   * to the Node object (install/node_token.ts); undefined: the pod's own
   * token is copied.
   */
  nodeToken?: NodeTokenConfig;
  /** Install and exit instead of keeping things fresh. */
  once: boolean;
  uninstall: boolean;
  /** Watch loop period, ms. */
  intervalMs: number;
  /** Where to serve /healthz, /readyz and /metrics (not with --once); undefined: not served. */
  healthAddr?: ListenAddress;
  /** True when no flag named the address: a busy default port is then only a warning. */
  healthAddrDefaulted: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
}

/** The installer's health address unless a flag names another. */
export const DEFAULT_INSTALL_HEALTH_ADDR = defaultHealthAddr("install");

/** Default locations on the host. */
export const DEFAULT_BIN_DIR = "/opt/cni/bin";
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";
export const DEFAULT_CONF_NAME = "00-hydra.conflist";

/** The help text of `hydra install`. */
export function installHelp(): string {
  return `Usage: hydra install [options]

Installs hydra on this node (run by the installer DaemonSet): copies the
executable into the CNI bin dir, creates the role symlinks, writes the node
kubeconfig from the pod's ServiceAccount and, in meta mode, the meta-CNI conf
wrapping the default network's conf. Every file is written atomically and
only when its content changes. Without --once it keeps running, re-applying
when the token, the default conf or an installed file changes; on SIGTERM it
exits and leaves everything in place.

Options:
  --mode meta|nri|router     meta: hydra becomes the runtime's CNI (writes the conf);
                             nri: hydra runs as NRI plugin beside the default CNI
                             (no conf written); router: nothing installed on the host
                             (default: meta)
  --bin-dir DIR              CNI bin dir (default: ${DEFAULT_BIN_DIR})
  --conf-dir DIR             CNI conf dir (default: ${DEFAULT_CONF_DIR})
  --kubeconfig FILE          node kubeconfig to write (default: <state-dir>/hydra.kubeconfig)
  --no-kubeconfig            write no kubeconfig (hydra without Kubernetes)
  --state-dir DIR            holds the install manifest (default: <conf-dir>/hydra.d)
  --source FILE              executable to copy (default: this hydra)
  --conf-name NAME           meta conf file name; must sort first (default: ${DEFAULT_CONF_NAME})
  --default-conf NAME|PATH   the default network's conf (default: first conf file by name)
  --default-conf-timeout S   wait up to S seconds for the default conf (default: 300)
  --meta-json JSON           extra keys for hydra's entry in the meta conf, as a JSON object;
                             checked like the conf: a typo keeps the installer not ready
                             and the node's conf as it was
  --multus-daemon-config F   Multus thick's daemon-config.json (its ConfigMap, mounted), to
                             take over a node whose conf is Multus thick's; see
                             docs/migrating-from-multus.md
  --token-file FILE          ServiceAccount token (default: ${SERVICE_ACCOUNT_DIR}/token)
  --ca-file FILE             cluster CA (default: ${SERVICE_ACCOUNT_DIR}/ca.crt)
  --server URL               API server (default: from KUBERNETES_SERVICE_HOST/PORT)
  --node-service-account [NS/]NAME
                             give the node kubeconfig its own identity: a token minted
                             for this ServiceAccount (namespace: the pod's), bound to
                             this node's Node object, renewed at half its lifetime
                             (default: copy the pod's own token)
  --node-name NAME           this node, for --node-service-account (default: $NODE_NAME)
  --node-token-ttl S         lifetime of a minted node token (default: 86400, at least 600)
  --interval S               watch loop period in seconds (default: 5)
  --once                     install, then exit
  --uninstall                remove exactly what the manifest records, then exit
${operationHelp(DEFAULT_INSTALL_HEALTH_ADDR, 29)}
  -h, --help                 show this help

The health endpoint runs only while the installer keeps running (not with
--once or --uninstall); when the default port is taken the installer runs
without it and says so. A pass that keeps failing with the same error is
logged once, then every 5 minutes with the count. Exit status: 0 done, 1 failed (nothing left
half-installed), 2 bad usage.`;
}

function seconds(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback * 1000;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new InstallError(`${flag} ${JSON.stringify(text)} is not a number of seconds`);
  }
  return Math.round(n * 1000);
}

/** `--node-service-account` and its companions; undefined when it is not given. */
function nodeTokenConfig(
  values: Record<string, string | boolean | undefined>,
  tokenFile: string,
): NodeTokenConfig | undefined {
  const account = values["node-service-account"] as string | undefined;
  if (account === undefined) {
    for (const flag of ["node-name", "node-token-ttl"]) {
      if (values[flag] !== undefined) {
        throw new InstallError(`--${flag} needs --node-service-account`);
      }
    }
    return undefined;
  }
  const [ns, name] = account.includes("/") ? account.split("/", 2) : [undefined, account];
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || (ns !== undefined && !ns)) {
    throw new InstallError(`--node-service-account ${JSON.stringify(account)} is not [NS/]NAME`);
  }
  const nodeName = (values["node-name"] as string | undefined) ?? Deno.env.get("NODE_NAME");
  if (!nodeName) {
    throw new InstallError(
      "--node-service-account needs this node's name: --node-name, or NODE_NAME from the " +
        "downward API (spec.nodeName)",
    );
  }
  const ttl = seconds("--node-token-ttl", values["node-token-ttl"] as string | undefined, 86400);
  if (ttl < 600_000) throw new InstallError("--node-token-ttl must be at least 600 seconds");
  return { namespace: ns ?? podNamespace(tokenFile), name, nodeName, ttlSeconds: ttl / 1000 };
}

/** The pod's namespace, from the file beside its ServiceAccount token. */
function podNamespace(tokenFile: string): string {
  const file = join(dirname(tokenFile), "namespace");
  try {
    const ns = Deno.readTextFileSync(file).trim();
    if (ns) return ns;
  } catch {
    // handled below
  }
  throw new InstallError(
    `cannot tell the pod's namespace from ${file}; give it: --node-service-account NS/NAME`,
  );
}

function absolute(flag: string, path: string): string {
  if (path === "") throw new InstallError(`${flag} is empty`);
  return isAbsolute(path) ? path : resolve(path);
}

/** `--meta-json` as an object, or why it is not one. */
function parseMetaJson(text: string | undefined): {
  metaExtra: Record<string, unknown>;
  metaExtraError?: string;
} {
  if (text === undefined) return { metaExtra: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { metaExtra: {}, metaExtraError: `--meta-json is not valid JSON: ${errorText(err)}` };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { metaExtra: {}, metaExtraError: "--meta-json must be a JSON object" };
  }
  return { metaExtra: parsed as Record<string, unknown> };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Parses `hydra install` arguments; throws {@link InstallError} on bad usage. */
export function parseInstallArgs(args: string[]): InstallOptions {
  const { values, ops } = parseRoleArgs(
    args,
    {
      help: { type: "boolean", short: "h" },
      mode: { type: "string" },
      "bin-dir": { type: "string" },
      "conf-dir": { type: "string" },
      kubeconfig: { type: "string" },
      "no-kubeconfig": { type: "boolean" },
      "state-dir": { type: "string" },
      source: { type: "string" },
      "conf-name": { type: "string" },
      "default-conf": { type: "string" },
      "default-conf-timeout": { type: "string" },
      "meta-json": { type: "string" },
      "multus-daemon-config": { type: "string" },
      "token-file": { type: "string" },
      "ca-file": { type: "string" },
      server: { type: "string" },
      "node-service-account": { type: "string" },
      "node-name": { type: "string" },
      "node-token-ttl": { type: "string" },
      interval: { type: "string" },
      once: { type: "boolean" },
      uninstall: { type: "boolean" },
    },
    DEFAULT_INSTALL_HEALTH_ADDR,
    (message) => new InstallError(message),
  );
  const mode = values.mode ?? "meta";
  if (!(INSTALL_MODES as readonly string[]).includes(mode)) {
    throw new InstallError(`--mode ${JSON.stringify(mode)}: expected one of meta, nri, router`);
  }
  const binDir = absolute("--bin-dir", values["bin-dir"] ?? DEFAULT_BIN_DIR);
  const confDir = absolute("--conf-dir", values["conf-dir"] ?? DEFAULT_CONF_DIR);
  const stateDir = absolute("--state-dir", values["state-dir"] ?? join(confDir, "hydra.d"));
  if (values["no-kubeconfig"] && values.kubeconfig !== undefined) {
    throw new InstallError("--kubeconfig and --no-kubeconfig exclude each other");
  }
  const kubeconfig = values["no-kubeconfig"]
    ? undefined
    : absolute("--kubeconfig", values.kubeconfig ?? join(stateDir, "hydra.kubeconfig"));
  const confName = values["conf-name"] ?? DEFAULT_CONF_NAME;
  if (confName.includes("/") || !/\.(conflist)$/.test(confName)) {
    throw new InstallError(`--conf-name ${JSON.stringify(confName)}: expected a *.conflist name`);
  }
  const { metaExtra, metaExtraError } = parseMetaJson(values["meta-json"]);
  const intervalMs = seconds("--interval", values.interval, 5);
  if (intervalMs < 50) throw new InstallError("--interval must be at least 0.05 seconds");
  if (values.once && values.uninstall) {
    throw new InstallError("--once and --uninstall exclude each other");
  }
  const tokenFile = values["token-file"] ?? `${SERVICE_ACCOUNT_DIR}/token`;
  return {
    help: values.help ?? false,
    mode: mode as InstallMode,
    binDir,
    confDir,
    kubeconfig,
    stateDir,
    manifest: join(stateDir, "install-manifest.json"),
    source: values.source === undefined ? undefined : absolute("--source", values.source),
    confName,
    defaultConf: values["default-conf"],
    defaultConfTimeoutMs: seconds("--default-conf-timeout", values["default-conf-timeout"], 300),
    metaExtra,
    ...(metaExtraError ? { metaExtraError } : {}),
    ...(values["multus-daemon-config"] !== undefined
      ? { multusDaemonConfig: absolute("--multus-daemon-config", values["multus-daemon-config"]) }
      : {}),
    tokenFile,
    nodeToken: nodeTokenConfig(values, tokenFile),
    caFile: values["ca-file"] ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    server: values.server,
    once: values.once ?? false,
    uninstall: values.uninstall ?? false,
    intervalMs,
    healthAddr: values.once || values.uninstall ? undefined : ops.healthAddr,
    healthAddrDefaulted: values["health-addr"] === undefined && values.listen === undefined,
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
    ...(ops.logFile !== undefined ? { logFile: ops.logFile } : {}),
  };
}
