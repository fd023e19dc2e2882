/**
 * What syncing the attachment record costs an ADD: the record's first
 * write (engine/record.ts saveRecord, a JSON of a few KB for three
 * networks) with its bytes synced before the rename, as every ADD does it
 * (`durable`), beside the same write without the sync, as every other
 * state file is written. Writes alternate so load changes hit both alike;
 * each record is removed again (as its DEL does). The folder should be on
 * the filesystem of the meta-CNI's cache dir (default: a temp folder under
 * /var/lib, where /var/lib/cni lives). Prints JSON.
 *
 *   deno run -A bench/record_sync.ts [--writes 300] [--dir /var/lib]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type AttachmentRecord,
  RECORD_KIND,
  removeRecord,
  saveRecord,
  type StoredDelegate,
} from "../engine/record.ts";
import { machineInfo } from "./machine.ts";
import { summarize } from "./stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    writes: { type: "string", default: "300" },
    dir: { type: "string", default: "/var/lib" },
  },
});
const WRITES = Number(flags.writes);

/** A record as an ADD of three networks writes it. */
function record(containerId: string): AttachmentRecord {
  const network = (i: number): StoredDelegate => ({
    ifName: i === 0 ? "eth0" : `net${i}`,
    config: {
      cniVersion: "1.1.0",
      name: `net-${i}`,
      loadOnlyInlinedPlugins: true,
      plugins: [{
        type: "hydra-bridge",
        bridge: `br${i}`,
        isGateway: true,
        ipam: { type: "hydra-ipam", subnet: `10.${i}.0.0/16`, dataDir: "/var/lib/cni/networks" },
      }],
    },
    network: `default/net-${i}`,
    cniArgs: [["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "web-0"]],
  });
  return {
    kind: RECORD_KIND,
    containerId,
    ifName: "eth0",
    netns: "/var/run/netns/cni-0123",
    pod: { namespace: "default", name: "web-0", uid: crypto.randomUUID() },
    delegates: [network(0), network(1), network(2)],
  };
}

const dir = await Deno.makeTempDir({ dir: flags.dir, prefix: "hydra-bench-record-" });
try {
  const plain: number[] = [];
  const durable: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    for (const [samples, sync] of [[plain, false], [durable, true]] as const) {
      const id = `c${i}${sync ? "d" : "p"}`.padEnd(64, "0");
      const started = performance.now();
      await saveRecord(dir, record(id), { durable: sync });
      samples.push(performance.now() - started);
      await removeRecord(dir, id, "eth0");
    }
  }
  const fs = new TextDecoder().decode(
    (await new Deno.Command("df", { args: ["-T", dir], stdout: "piped" }).output()).stdout,
  ).trim().split("\n").pop()?.split(/\s+/)[1];
  const p = summarize(plain);
  const d = summarize(durable);
  console.log(JSON.stringify(
    {
      machine: machineInfo(),
      filesystem: fs,
      bytes: JSON.stringify(record("x".repeat(64))).length,
      recordWriteMs: { plain: p, durable: d },
      addedPerAddMs: { median: Math.round((d.median - p.median) * 1000) / 1000 },
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(dir, { recursive: true });
}
