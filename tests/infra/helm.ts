/**
 * helm (built from its Go module by build-peers.sh) for tests: rendering charts (`helm template`)
 * and installing them into a test control plane (`helm install --kubeconfig ...`).
 *
 * Every run gets its own throwaway HELM_CACHE_HOME, HELM_CONFIG_HOME and HELM_DATA_HOME, so tests
 * neither read nor write the user's helm settings, repositories or plugins.
 *
 * @module
 */

import { peerBin } from "./peers.ts";
import { runCommand } from "./process.ts";

/** Path of the built helm binary; throws PeerMissingError when it has not been built. */
export function helmBin(): string {
  return peerBin("helm");
}

/** Options for {@link runHelm}. */
export interface HelmOptions {
  /** Kubeconfig for commands that talk to a cluster (e.g. `cp.kubeconfigPath`). */
  kubeconfig?: string;
  /** Working folder (relative chart paths resolve from here). */
  cwd?: string;
  /** Extra environment. */
  env?: Record<string, string>;
}

/** Runs helm to completion and returns its stdout; throws with its stderr on failure. */
export async function runHelm(args: string[], opts: HelmOptions = {}): Promise<string> {
  const bin = helmBin();
  const home = await Deno.makeTempDir({ prefix: "hydra-helm-" });
  try {
    const env: Record<string, string> = {
      HELM_CACHE_HOME: `${home}/cache`,
      HELM_CONFIG_HOME: `${home}/config`,
      HELM_DATA_HOME: `${home}/data`,
      ...opts.env,
    };
    if (opts.kubeconfig) env.KUBECONFIG = opts.kubeconfig;
    return (await runCommand(bin, args, { env, cwd: opts.cwd })).stdout;
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}
