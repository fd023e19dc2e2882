/**
 * Reading a hybrid networks file (YAML or JSON), for `hydra hybrid sync
 * --config`. Apart from the model because the YAML parser costs a plugin
 * exec tens of milliseconds to load: the `hydra-hybrid` plugin, on the CNI
 * exec path, imports only the model.
 *
 * @module
 */

import { parseConfigText } from "../pkg/config_text.ts";
import {
  checkSubnets,
  HybridConfigError,
  type HybridNetwork,
  parseHybridNetwork,
} from "./model.ts";

/** Parses a hybrid networks file (YAML or JSON); subnets are checked across networks too. */
export async function parseHybridConfig(
  text: string,
  source = "config",
): Promise<HybridNetwork[]> {
  let doc: unknown;
  try {
    doc = await parseConfigText(text);
  } catch (err) {
    throw new HybridConfigError(`${source}: not YAML or JSON: ${(err as Error).message}`);
  }
  const list = Array.isArray(doc)
    ? doc
    : doc !== null && typeof doc === "object"
    ? (doc as { networks?: unknown }).networks
    : undefined;
  if (!Array.isArray(list) || !list.length) {
    throw new HybridConfigError(`${source}: expected a non-empty "networks" list`);
  }
  try {
    const nets = list.map((raw, i) => parseHybridNetwork(raw, i));
    const names = new Set<string>();
    for (const n of nets) {
      if (names.has(n.name)) throw new HybridConfigError(`network ${n.name} is listed twice`);
      names.add(n.name);
    }
    const problems = checkSubnets(
      nets.flatMap((n) => n.subnets.map((s) => ({ network: n.name, subnet: s }))),
    );
    if (problems.length) {
      throw new HybridConfigError(`network ${problems[0].network}: ${problems[0].message}`);
    }
    return nets;
  } catch (err) {
    if (err instanceof HybridConfigError) throw new HybridConfigError(`${source}: ${err.message}`);
    throw err;
  }
}
