/**
 * Renders the plugin benchmark's JSON (from `deno task bench` or
 * bench/plugins.ts) as Markdown tables, hydra's figures beside the peer's:
 *
 *   deno task bench --only plugins > bench.json
 *   deno run -A bench/report.ts bench.json
 *
 * A run comparing revisions (`--tree A,B`) gets one set of tables per revision.
 *
 * @module
 */

/** A latency summary as the benchmark prints it (ms). */
interface Summary {
  n: number;
  median: number;
  p95: number;
  p99: number;
}

interface CaseReport {
  description: string;
  execsPerAdd: number;
  addDelMs: Summary;
  addDelCpuMs?: Summary;
  peakRssKiB: { add: number | null; del: number | null };
}

interface TargetReport {
  name: string;
  limit: number;
  ratio: number;
  ratioP95: number;
  met: boolean;
}

/** The parts of the plugin benchmark's document this renders. */
export interface PluginBench {
  pods: number;
  machine: { cpuModel: string; cpus: number; memoryMiB: number; kernel: string; deno: string };
  peers: { reference: string; multus?: string };
  cases: Record<string, CaseReport>;
  single: Record<string, { hydra: CaseReport; reference?: CaseReport; ratio?: number }>;
  targets: TargetReport[];
}

function ms(s: Summary): string {
  return `${s.median.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.p99.toFixed(1)}`;
}

/** Latency, then CPU time and peak RSS. */
function fig(c: CaseReport): string {
  const peak = Math.max(c.peakRssKiB.add ?? 0, c.peakRssKiB.del ?? 0);
  const cpu = c.addDelCpuMs ? `, CPU ${c.addDelCpuMs.median.toFixed(1)}` : "";
  return `${ms(c.addDelMs)}${cpu}, ${peak ? `${(peak / 1024).toFixed(1)} MiB` : "–"}`;
}

function targetFor(doc: PluginBench, prefix: string): TargetReport | undefined {
  return doc.targets.find((t) => t.name.startsWith(prefix));
}

function verdict(t: TargetReport | undefined): string {
  if (!t) return "–";
  return `${t.ratio.toFixed(2)} (≤ ${t.limit}: ${t.met ? "met" : "not met"})`;
}

/** The Markdown tables for one plugin benchmark document. */
export function renderPluginBench(doc: PluginBench): string {
  const lines: string[] = [];
  const a = doc.cases.a_meta_inprocess;
  const b = doc.cases.b_meta_exec_reference;
  const c = doc.cases.c_multus_thin_reference;
  lines.push(
    `ADD+DEL per pod, ${doc.pods} pods each: latency in ms (median / p95 / p99), median CPU ` +
      `time (ms, user+system of all processes involved), peak RSS of the largest process:`,
    "",
    "| three networks per pod | hydra | peer | hydra ÷ peer (median) |",
    "| --- | --- | --- | --- |",
  );
  if (a && c) {
    lines.push(
      `| (a) meta-CNI, built-ins in-process vs (c) Multus thin exec'ing the reference plugins | ` +
        `${fig(a)}, ${a.execsPerAdd} exec | ${fig(c)}, ${c.execsPerAdd} execs | ` +
        `${verdict(targetFor(doc, "(a)"))} |`,
    );
  }
  if (b && c) {
    lines.push(
      `| (b) meta-CNI exec'ing the reference plugins vs (c) | ${
        fig(b)
      }, ${b.execsPerAdd} execs | ` +
        `${fig(c)} | ${(b.addDelMs.median / c.addDelMs.median).toFixed(2)} |`,
    );
  }
  lines.push(
    "",
    "| one plugin exec'd alone | hydra | reference plugin | hydra ÷ reference (median) |",
    "| --- | --- | --- | --- |",
  );
  for (const [kind, s] of Object.entries(doc.single)) {
    const ref = s.reference ? fig(s.reference) : "no reference plugin";
    const t = targetFor(doc, `(d) hydra-${kind} `);
    lines.push(
      `| ${kind} | ${fig(s.hydra)} | ${ref} | ${verdict(t)} |`,
    );
  }
  const m = doc.machine;
  lines.push(
    "",
    `Machine: ${m.cpuModel}, ${m.cpus} CPUs, ${Math.round(m.memoryMiB / 1024)} GiB, Linux ` +
      `${m.kernel}, Deno ${m.deno}. Peers: ${doc.peers.reference}` +
      `${doc.peers.multus ? `; ${doc.peers.multus}` : ""}.`,
  );
  return lines.join("\n");
}

/**
 * The plugin benchmark documents in a `deno task bench` output (one per
 * tree: `plugins`, or `plugins@<revision>` when revisions were compared),
 * or the document itself when it is bench/plugins.ts's own output.
 */
export function pluginDocs(raw: unknown): [string, PluginBench][] {
  const results = (raw as { results?: Record<string, unknown> })?.results;
  if (!results) return [["plugins", raw as PluginBench]];
  return Object.entries(results)
    .filter(([key]) => key === "plugins" || key.startsWith("plugins@"))
    .map(([key, doc]) => [key, doc as PluginBench]);
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (!path) {
    console.error("usage: deno run -A bench/report.ts <bench.json>");
    Deno.exit(2);
  }
  const docs = pluginDocs(JSON.parse(await Deno.readTextFile(path)));
  for (const [key, doc] of docs) {
    if (docs.length > 1) console.log(`\n### ${key}\n`);
    console.log(renderPluginBench(doc));
  }
}
