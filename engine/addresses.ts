/**
 * Releasing a container's addresses straight from the address stores, for
 * the one case no plugin can do it: a recorded network this version cannot
 * run (a record written by a newer version). The stores of hydra-ipam,
 * host-local and kube-node share host-local's layout
 * (`<dataDir>/<network>/<address>` holding `<containerID>\r\n<ifname>`),
 * so the reservations of the container's interface are found there by
 * owner without running anything.
 *
 * @module
 */

import { loadStoreLocation } from "../ipam/config.ts";
import { releaseByOwner, withStore } from "../ipam/store.ts";
import type { NetConf } from "../cni/types.ts";

/** IPAM types whose reservations live in host-local's layout. */
const STORE_IPAM = new Set(["host-local", "hydra-ipam", "kube-node"]);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The plugin objects of a recorded network config (a list, or a single plugin). */
function pluginsOf(config: Record<string, unknown>): Record<string, unknown>[] {
  const plugins = Array.isArray(config.plugins) ? config.plugins : [config];
  return plugins.filter(isObject);
}

/**
 * Releases, in every store the recorded network `config` names through a
 * host-local-style IPAM, the addresses owned by `containerId`/`ifName`;
 * returns them as "<store>/<address>".
 */
export async function releaseRecordedAddresses(
  config: Record<string, unknown>,
  containerId: string,
  ifName: string,
): Promise<string[]> {
  const released: string[] = [];
  const name = typeof config.name === "string" ? config.name : "";
  for (const plugin of pluginsOf(config)) {
    const ipam = plugin.ipam;
    if (!isObject(ipam) || typeof ipam.type !== "string" || !STORE_IPAM.has(ipam.type)) continue;
    const { dataDir, name: network } = loadStoreLocation({ ...plugin, name } as NetConf);
    const gone = await withStore(
      dataDir,
      network,
      (store) => releaseByOwner(store, containerId, ifName),
    );
    released.push(...gone.map((r) => `${dataDir}/${network}/${r.name}`));
  }
  return released;
}
