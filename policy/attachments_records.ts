/**
 * {@link AttachmentSource} from hydra's attachment records: the meta-CNI's
 * `<cacheDir>/attachments/<containerId>-<ifName>` files, which both setups
 * write (the runtime's meta-CNI in the meta setup, `hydra nri serve`'s
 * in-process meta-CNI in the NRI setup), each naming the pod, its network
 * namespace and every delegate with its network and interface; addresses
 * come from the delegates' cached CNI results beside them.
 *
 * Which delegates are secondary differs: a meta-CNI record's delegate on
 * the record's own interface (CNI_IFNAME) is the pod's primary network,
 * while in an NRI record every delegate is an extra network (the runtime's
 * own CNI made the primary one). Records of calls outside Kubernetes mode
 * (no pod, no network names) and deleted delegates are left out.
 *
 * Changes are seen through inotify on the record folders, and by reading
 * them again every `pollMs` (folders made later, events missed).
 *
 * @module
 */

import { readCachedResult } from "../cni/cache.ts";
import type { Result } from "../cni/types.ts";
import { type IpAddr, parseIpAddrOrCidr } from "../ipaddr/ip.ts";
import { type AttachmentRecord, listRecords, recordsDir } from "../engine/record.ts";
import type { AttachedInterface, AttachmentSource, PodAttachment } from "./attachments.ts";

/** A folder of records and which setup wrote it. */
export interface RecordFolder {
  /** The meta-CNI's or the NRI plugin's cache folder (records are in its `attachments/`). */
  cacheDir: string;
  kind: "meta" | "nri";
}

/** Options of {@link recordAttachmentSource}. */
export interface RecordSourceOptions {
  folders: readonly RecordFolder[];
  /** Full re-read period of the watch; 10 s. */
  pollMs?: number;
  /** Told about unreadable records. */
  onError?: (path: string, err: unknown) => void;
}

async function addressesOf(
  cacheDir: string,
  record: AttachmentRecord,
  network: string,
  ifName: string,
): Promise<IpAddr[]> {
  let result: Result | undefined;
  try {
    result = await readCachedResult(cacheDir, network, "1.1.0", record.containerId, ifName) as
      | Result
      | undefined;
  } catch {
    return [];
  }
  return (result?.ips ?? [])
    .map((ip) => parseIpAddrOrCidr(ip.address))
    .filter((ip): ip is IpAddr => ip !== undefined);
}

async function recordInterfaces(
  folder: RecordFolder,
  record: AttachmentRecord,
): Promise<AttachedInterface[]> {
  const out: AttachedInterface[] = [];
  for (const d of record.delegates) {
    if (d.deleted || !d.network) continue;
    if (folder.kind === "meta" && d.ifName === record.ifName) continue;
    const confName = typeof d.config.name === "string" ? d.config.name : "";
    out.push({
      network: d.network,
      ifName: d.ifName,
      addresses: confName ? await addressesOf(folder.cacheDir, record, confName, d.ifName) : [],
    });
  }
  return out;
}

/** Reads every folder's records into pod attachments, merged by namespace path. */
async function readAll(opts: RecordSourceOptions): Promise<PodAttachment[]> {
  const byNetns = new Map<string, PodAttachment>();
  for (const folder of opts.folders) {
    for (const record of await listRecords(folder.cacheDir, opts.onError)) {
      if (!record.pod || !record.netns) continue;
      const interfaces = await recordInterfaces(folder, record);
      if (interfaces.length === 0) continue;
      const seen = byNetns.get(record.netns);
      if (seen) seen.interfaces = [...seen.interfaces, ...interfaces];
      else byNetns.set(record.netns, { pod: record.pod, netns: record.netns, interfaces });
    }
  }
  return [...byNetns.values()];
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The attachment source over hydra's record folders. */
export function recordAttachmentSource(opts: RecordSourceOptions): AttachmentSource {
  return {
    list: () => readAll(opts),
    watch(onChange) {
      const stopper = new AbortController();
      const watchers = new Map<string, Deno.FsWatcher>();
      const follow = async () => {
        for (const f of opts.folders) {
          const dir = recordsDir(f.cacheDir);
          if (watchers.has(dir) || stopper.signal.aborted || !await exists(dir)) continue;
          const w = Deno.watchFs(dir, { recursive: false });
          watchers.set(dir, w);
          (async () => {
            for await (const _ of w) onChange();
          })().catch(() => watchers.delete(dir));
          // Made while nobody watched: whatever is in it is news.
          onChange();
        }
      };
      const timer = setInterval(() => {
        follow().catch(() => {});
        onChange();
      }, opts.pollMs ?? 10_000);
      follow().catch(() => {});
      return {
        stop() {
          stopper.abort();
          clearInterval(timer);
          for (const w of watchers.values()) w.close();
          return Promise.resolve();
        },
      };
    },
  };
}
