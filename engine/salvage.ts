/**
 * DEL when the container interface has no usable record: it was never
 * written (ADD did not get that far, or a DEL already removed everything),
 * or it was damaged (truncated, zeroed, of another version) and set aside.
 * The DEL then works from whatever else survives:
 *
 * - the delegates' result caches (`<cacheDir>/results/`, libcni's layout:
 *   each holds its network's conf, namespace, CNI_ARGS and capability
 *   arguments) for this container, except interfaces another, readable
 *   record of the same container owns;
 * - Kubernetes mode: the pod's networks resolved again when the pod still
 *   exists under the same UID (engine/kube.ts);
 * - conf-file mode, when a damaged record was set aside: the conf's own
 *   delegates.
 *
 * What was found becomes a record like any other and is deleted as one
 * (run.ts): a delegate whose DEL fails stays recorded, so the runtime's
 * next DEL retries it, and the failure is this DEL's failure. A delegate
 * DEL of a network that was never attached does nothing, as CNI requires.
 *
 * @module
 */

import { listCacheEntries } from "../cni/cache.ts";
import { parseNetworkConfig } from "../cni/conf.ts";
import { parseCniArgs } from "../cni/args.ts";
import type { CniError } from "../cni/errors.ts";
import type { CmdArgs } from "../cni/types.ts";
import { resolveDelegates } from "./config.ts";
import { deleteAll, type Invocation } from "./run.ts";
import {
  type AttachmentRecord,
  loadRecord,
  RECORD_KIND,
  recordedInterfaces,
  type StoredDelegate,
  storeDelegate,
} from "./record.ts";

/** Interfaces of `containerId` that another readable record (not `ifName`'s) owns. */
async function ownedElsewhere(inv: Invocation, containerId: string, ifName: string) {
  const owned = new Set<string>();
  for (const other of recordedInterfaces(inv.options.cacheDir, containerId)) {
    if (other === ifName) continue;
    const record = await loadRecord(inv.options.cacheDir, containerId, other).catch(() =>
      undefined
    );
    for (const d of record?.delegates ?? []) owned.add(d.ifName);
  }
  return owned;
}

/** The delegates the result caches of the container remember. */
async function cachedDelegates(args: CmdArgs, inv: Invocation): Promise<StoredDelegate[]> {
  const skip = await ownedElsewhere(inv, args.containerId, args.ifName);
  const out: StoredDelegate[] = [];
  for (const entry of await listCacheEntries(inv.options.cacheDir, args.containerId)) {
    if (skip.has(entry.ifName)) continue;
    try {
      const list = parseNetworkConfig(entry.config, `cached network "${entry.networkName}"`);
      const stored: StoredDelegate = { ...storeDelegate({ ifName: entry.ifName, list }) };
      stored.cniArgs = entry.cniArgs ?? [];
      if (entry.capabilityArgs) stored.capabilityArgs = entry.capabilityArgs;
      out.push(stored);
    } catch (err) {
      inv.log.warn("cached network cannot be run; skipped", {
        network: entry.networkName,
        delegateIfName: entry.ifName,
        error: (err as Error).message,
      });
    }
  }
  // Attach order as far as it can be told: the container interface's network first.
  return out.sort((a, b) => Number(b.ifName === args.ifName) - Number(a.ifName === args.ifName));
}

/** Conf-file mode: the conf's delegates, as they would be attached now. */
async function confDelegates(args: CmdArgs, inv: Invocation): Promise<StoredDelegate[]> {
  try {
    const delegates = await resolveDelegates(args.config, inv.options, args.ifName);
    const cniArgs = parseCniArgs(args.args);
    return delegates.map((d, i) => {
      const stored: StoredDelegate = { ...storeDelegate(d), cniArgs };
      const caps = args.config.runtimeConfig;
      if (i === 0 && caps && typeof caps === "object") {
        stored.capabilityArgs = caps as Record<string, unknown>;
      }
      return stored;
    });
  } catch (err) {
    inv.log.error("the conf's networks could not be resolved", { error: (err as Error).message });
    return [];
  }
}

const key = (d: StoredDelegate) => `${String(d.config.name)}\0${d.ifName}`;

/**
 * DEL without a usable record (see the module doc); `damaged` when one was
 * there and set aside. `kubeDelegates` resolves the pod's networks in
 * Kubernetes mode (undefined in conf-file mode). Returns the delegates' DEL
 * failures.
 */
export async function detachWithoutRecord(
  args: CmdArgs,
  inv: Invocation,
  damaged: boolean,
  kubeDelegates?: () => Promise<StoredDelegate[]>,
): Promise<CniError[]> {
  const found = await cachedDelegates(args, inv);
  const more = kubeDelegates
    ? await kubeDelegates()
    : damaged
    ? await confDelegates(args, inv)
    : [];
  const seen = new Set(found.map(key));
  for (const d of more) if (!seen.has(key(d))) found.push(d);
  if (found.length === 0) {
    inv.log.info("no attachments recorded; nothing to delete");
    return [];
  }
  inv.log.info("deleting without a record", {
    networks: found.map((d) => `${String(d.config.name)}@${d.ifName}`),
    damaged,
  });
  const record: AttachmentRecord = {
    kind: RECORD_KIND,
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    delegates: found,
  };
  return await deleteAll(record, args.netns, inv);
}
