/**
 * Summarises a V8 heap snapshot (`.heapsnapshot`, as `hydra daemon
 * --heap-snapshot-dir` writes on SIGUSR2): the total, and the largest groups
 * of objects by self size, grouped by kind and constructor (or, for
 * strings and code, by kind alone). With two snapshots it prints the
 * difference per group, largest growth first.
 *
 *   deno run -A tools/heap_summary.ts A.heapsnapshot [B.heapsnapshot] [--top 30]
 *
 * @module
 */

import { parseArgs } from "node:util";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string[] | string)[] } };
  nodes: number[];
  strings: string[];
}

/** Self size per group ("kind name") and the total, in bytes. */
export function groupSizes(doc: Snapshot): { total: number; groups: Map<string, number> } {
  const fields = doc.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const types = doc.snapshot.meta.node_types[typeAt] as string[];
  const groups = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < doc.nodes.length; i += width) {
    const kind = types[doc.nodes[i + typeAt]];
    const size = doc.nodes[i + sizeAt];
    total += size;
    // Names of strings, code and numbers are their contents: group those by kind only.
    const named = kind === "object" || kind === "closure" || kind === "native";
    const key = named ? `${kind} ${doc.strings[doc.nodes[i + nameAt]].slice(0, 60)}` : kind;
    groups.set(key, (groups.get(key) ?? 0) + size);
  }
  return { total, groups };
}

const mib = (b: number) => (b / 1048576).toFixed(2).padStart(8);

async function load(path: string) {
  return groupSizes(JSON.parse(await Deno.readTextFile(path)) as Snapshot);
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { top: { type: "string", default: "30" } },
  });
  const top = Number(values.top);
  if (positionals.length === 0 || positionals.length > 2) {
    console.error("usage: tools/heap_summary.ts A.heapsnapshot [B.heapsnapshot] [--top N]");
    Deno.exit(2);
  }
  const a = await load(positionals[0]);
  if (positionals.length === 1) {
    console.log(`total ${mib(a.total)} MiB`);
    for (const [k, v] of [...a.groups].sort((x, y) => y[1] - x[1]).slice(0, top)) {
      console.log(`${mib(v)} MiB  ${k}`);
    }
  } else {
    const b = await load(positionals[1]);
    console.log(`total ${mib(a.total)} → ${mib(b.total)} MiB`);
    const keys = new Set([...a.groups.keys(), ...b.groups.keys()]);
    const diff = [...keys].map((k) =>
      [k, (b.groups.get(k) ?? 0) - (a.groups.get(k) ?? 0)] as const
    );
    for (const [k, d] of diff.sort((x, y) => y[1] - x[1]).slice(0, top)) {
      console.log(`${mib(d)} MiB  ${k}  (${mib(b.groups.get(k) ?? 0)} MiB)`);
    }
  }
}
