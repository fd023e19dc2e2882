/**
 * What deploy/ runs, read from its manifests, so that a benchmark measures
 * the configuration users get by applying them (and a test can check it
 * does): the arguments of a DaemonSet's container.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { fileURLToPath } from "node:url";

/** deploy/ of this tree. */
export const DEPLOY_DIR: string = fileURLToPath(new URL("../deploy", import.meta.url));

interface Container {
  name: string;
  args?: string[];
  command?: string[];
}

interface Manifest {
  kind?: string;
  metadata?: { name?: string };
  spec?: { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } };
}

/**
 * The args of container `container` of the DaemonSet in deploy/`file`
 * (the only one there, or the one named `daemonSet`); throws when missing.
 */
export function deployedArgs(file: string, container: string, daemonSet?: string): string[] {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${DEPLOY_DIR}/${file}`))
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m?.kind === "DaemonSet")
    .filter((m) => !daemonSet || m.metadata?.name === daemonSet);
  for (const ds of docs) {
    const pod = ds.spec?.template?.spec;
    const found = [...pod?.containers ?? [], ...pod?.initContainers ?? []]
      .find((c) => c.name === container);
    if (found) return [...found.args ?? []];
  }
  throw new Error(`deploy/${file}: no DaemonSet container named ${container}`);
}

/** The value of `--name=value` (or `--name value`) in `args`, undefined when absent. */
export function flagValue(args: string[], name: string): string | undefined {
  for (const [i, a] of args.entries()) {
    if (a === `--${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}
