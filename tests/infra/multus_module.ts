/**
 * What Multus writes on a node, reproduced at run time from its own module
 * at the pinned MULTUS_VERSION in the Go module cache (the peers' build put
 * it there; nothing of it is committed):
 *
 * - the thin plugin's `00-multus.conf` / `00-multus.conflist`, rendered from
 *   the template of its entrypoint (cmd/thin_entrypoint) with the values
 *   the entrypoint computes for its default flags;
 * - the thick DaemonSet's daemon config, `daemon-config.json` of the
 *   `multus-daemon-config` ConfigMap in deployments/multus-daemonset-thick.yml.
 *
 * @module
 */

import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { PeerMissingError, versions } from "./peers.ts";
import { runCommand } from "./process.ts";

type Json = Record<string, unknown>;

/** Where the pinned Multus module lies in the Go module cache. */
export async function multusModuleDir(): Promise<string> {
  const mod = `gopkg.in/k8snetworkplumbingwg/multus-cni.v4@${versions().MULTUS_VERSION}`;
  const out = await runCommand("go", ["mod", "download", "-json", mod], {
    allowFailure: true,
    env: { GOFLAGS: "", GOTOOLCHAIN: "local", GO111MODULE: "on" },
    cwd: "/",
  });
  let dir: string | undefined;
  try {
    dir = (JSON.parse(out.stdout) as { Dir?: string }).Dir;
  } catch {
    // no JSON: the go command failed
  }
  if (out.code !== 0 || !dir) {
    throw new PeerMissingError(
      `Multus module ${mod} (${out.stderr.trim()})`,
      "the Go module cache",
    );
  }
  return dir;
}

/** A Go raw-string constant of a source file. */
function goConstant(source: string, name: string): string {
  const m = new RegExp(`const ${name} = \`([^\`]*)\``).exec(source);
  if (!m) throw new Error(`Multus' thin entrypoint has no ${name}`);
  return m[1];
}

/** Fills a Go text/template whose actions are all `{{ .Field }}`. */
function fillTemplate(template: string, data: Record<string, string>): string {
  return template.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_, key: string) => {
    if (!Object.hasOwn(data, key)) throw new Error(`template field ${key} not filled`);
    return data[key];
  });
}

/** Go's json.Marshal of a map: keys sorted, no spaces. */
function goJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(goJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Json).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${goJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The default network's capabilities as the entrypoint collects them. */
function masterCapabilities(master: Json): Record<string, boolean> {
  const caps: Record<string, boolean> = {};
  const plugins = Array.isArray(master.plugins) ? master.plugins as Json[] : [master];
  for (const p of plugins) Object.assign(caps, (p.capabilities ?? {}) as Record<string, boolean>);
  return caps;
}

/** Flags of Multus' thin entrypoint that change its conf (defaults: the entrypoint's). */
export interface ThinFlags {
  /** --multus-kubeconfig-file-host (default /etc/cni/net.d/multus.d/multus.kubeconfig). */
  kubeconfigHost?: string;
  /** --multus-log-level. */
  logLevel?: string;
  /** --namespace-isolation. */
  namespaceIsolation?: boolean;
  /** --global-namespaces. */
  globalNamespaces?: string;
}

/**
 * The conf Multus' thin entrypoint (`--multus-conf-file=auto`) writes for
 * the default network `master`: its file name (`00-multus.conf`, or
 * `00-multus.conflist` for cniVersion 1.0.0 and later) and its text.
 */
export async function thinConf(
  master: Json,
  flags: ThinFlags = {},
): Promise<{ name: string; text: string }> {
  const source = await Deno.readTextFile(
    join(await multusModuleDir(), "cmd", "thin_entrypoint", "main.go"),
  );
  const version = String(master.cniVersion);
  const list = Number(version.split(".")[0]) >= 1;
  const template = goConstant(source, list ? "multusConflistTemplate" : "multusConfTemplate");
  const caps = masterCapabilities(master);
  const line = (key: string, value: unknown) =>
    `\n        ${JSON.stringify(key)}: ${goJson(value)},`;
  const text = fillTemplate(template, {
    CNIVersion: version,
    MasterPluginNetworkName: "multus-cni-network",
    NestedCapabilities: Object.keys(caps).length ? line("capabilities", caps) : "",
    NamespaceIsolationConfig: flags.namespaceIsolation ? line("namespaceIsolation", true) : "",
    GlobalNamespacesConfig: flags.globalNamespaces
      ? line("globalNamespaces", flags.globalNamespaces)
      : "",
    LogToStderrConfig: "",
    LogLevelConfig: flags.logLevel ? line("logLevel", flags.logLevel) : "",
    LogFileConfig: "",
    AdditionalBinDirConfig: "",
    // The entrypoint's default --multus-cni-conf-dir, written under this key.
    MultusCNIConfDirConfig: line("cniConf", "/host/etc/cni/multus/net.d"),
    ReadinessIndicatorFileConfig: "",
    MultusKubeConfigFileHost: flags.kubeconfigHost ?? "/etc/cni/net.d/multus.d/multus.kubeconfig",
    MasterPluginJSON: goJson(master),
  });
  JSON.parse(text); // what the entrypoint writes is JSON
  return { name: list ? "00-multus.conflist" : "00-multus.conf", text };
}

/** The thick DaemonSet's daemon config: `daemon-config.json` of its ConfigMap. */
export async function thickDaemonConfig(): Promise<Json> {
  const path = join(await multusModuleDir(), "deployments", "multus-daemonset-thick.yml");
  for (const doc of parseAllDocuments(await Deno.readTextFile(path))) {
    const obj = doc.toJS() as Json | null;
    if (obj?.kind !== "ConfigMap") continue;
    const data = obj.data as Record<string, string> | undefined;
    if (data?.["daemon-config.json"]) return JSON.parse(data["daemon-config.json"]);
  }
  throw new Error(`${path} has no daemon-config.json ConfigMap`);
}
