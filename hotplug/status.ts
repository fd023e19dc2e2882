/**
 * A hot-plugged pod's network status, kept in line with its record: every
 * extra network the record holds has its network-status entry and result
 * annotation (from the network's cached result), and an entry hydra wrote
 * for a network no longer attached is dropped with its result annotation.
 * Entries of other writers (the runtime's default CNI, device plugins) are
 * never touched: hydra's are those with a `hydra.clusternet.io.<network>`
 * result annotation.
 *
 * Derived each time from the record and the pod as it is, so a write that
 * failed, or one a restart lost, is made by the next pass.
 *
 * @module
 */

import { toInternal } from "../cni/convert.ts";
import type { KubeClient } from "../kube/client.ts";
import type { PodArgs } from "../kube/delegate.ts";
import type { Pod } from "../kube/objects.ts";
import { type AttachmentReport, reportAttachments } from "../kube/report.ts";
import {
  NETWORK_STATUS_ANNOTATION,
  parseNetworkStatus,
  resultAnnotationKey,
} from "../kube/status.ts";
import type { AttachmentRecord } from "../engine/record.ts";
import { recordedNetworks, recordedResult } from "../engine/plug.ts";
import type { RecordKind } from "./options.ts";

/** An extra network of the record that network-status should show. */
interface Shown {
  index: number;
  network: string;
  ifName: string;
}

/**
 * The record's attached extra networks: not half-plugged ones, and in a
 * meta-CNI record not the pod's default network (the one on the record's
 * own interface, CNI_IFNAME, which the pod did not select).
 */
function extraNetworks(record: AttachmentRecord, kind: RecordKind): Shown[] {
  const isDefault = (n: { ifName: string; selected: boolean }) =>
    kind === "meta" && n.ifName === record.ifName && !n.selected;
  return recordedNetworks(record).flatMap((n) =>
    n.pending || !n.network || isDefault(n)
      ? []
      : [{ index: n.index, network: n.network, ifName: n.ifName }]
  );
}

/** (name, interface) of each entry of the pod's network-status. */
function statusEntries(pod: Pod): { name: string; iface?: string }[] {
  const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  if (!text) return [];
  try {
    return parseNetworkStatus(text).flatMap((e) => {
      const { name, interface: iface } = (e ?? {}) as { name?: unknown; interface?: unknown };
      return typeof name === "string"
        ? [{ name, ...(typeof iface === "string" ? { iface } : {}) }]
        : [];
    });
  } catch {
    return [];
  }
}

/** What the pod's status lacks and holds too much of, against the record. */
export function statusDrift(pod: Pod, record: AttachmentRecord, kind: RecordKind) {
  const shown = extraNetworks(record, kind);
  const entries = statusEntries(pod);
  const has = new Set(entries.map((e) => `${e.name}\0${e.iface ?? ""}`));
  const want = new Set(shown.map((s) => `${s.network}\0${s.ifName}`));
  const liveNames = new Set(shown.map((s) => s.network));
  const annotations = pod.metadata.annotations ?? {};
  const stale = new Set<string>();
  for (const e of entries) {
    const ours = annotations[resultAnnotationKey(e.name)] !== undefined;
    if (ours && !want.has(`${e.name}\0${e.iface ?? ""}`)) stale.add(e.name);
  }
  return {
    shown,
    missing: shown.filter((s) => !has.has(`${s.network}\0${s.ifName}`)),
    /** Names to drop: none of their networks is attached any more. */
    remove: [...stale].filter((n) => !liveNames.has(n)),
    /** Names with an entry too many but still attached on another interface. */
    redo: [...stale].filter((n) => liveNames.has(n)),
  };
}

/**
 * Writes the pod's status when it differs from the record; true when it
 * did. Throws the API's error when the write fails.
 */
export async function syncStatus(
  client: KubeClient,
  pod: Pod,
  podArgs: PodArgs,
  cacheDir: string,
  record: AttachmentRecord,
  kind: RecordKind,
  timeoutMs: number,
): Promise<boolean> {
  const drift = statusDrift(pod, record, kind);
  if (!drift.missing.length && !drift.remove.length && !drift.redo.length) return false;
  const reports: AttachmentReport[] = [];
  for (const s of drift.shown) {
    const raw = await recordedResult(cacheDir, record, s.index);
    if (!raw) continue;
    reports.push({ name: s.network, isDefault: false, result: toInternal(raw), rawResult: raw });
  }
  await reportAttachments(client, podArgs, reports, { remove: drift.remove, timeoutMs });
  return true;
}
