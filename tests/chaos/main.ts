/**
 * `deno task chaos`: the fault suite. Runs every scenario with its share of
 * the fault cycles and the fuzzing, then prints the counters as one JSON
 * line on stdout (findings, with what to replay them, on stderr):
 *
 *   {"cycles","killed","leakedLinks","leakedAddresses","leakedFiles",
 *    "duplicates","stuck","crashes","fuzzInputs"}
 *
 *   deno task chaos                          the full run (≥ 1,000 cycles, ≥ 10,000 inputs a parser)
 *   deno task chaos --cycles 60 --fuzz 300   a short run
 *   deno task chaos --only kill,fuzz         some scenarios
 *   deno task chaos --seed 42                replay a run's choices
 *
 * Exit status: 0 when every count but cycles, killed and fuzzInputs is 0;
 * 1 otherwise. Needs root and the test peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ChaosReport } from "./report.ts";
import { type ScenarioName, SCENARIOS } from "./scenarios.ts";
import { createRng } from "./rng.ts";

/** Sizes of a full run. */
export const FULL = { cycles: 1000, fuzz: 10_000 };

/** Options of one run. */
export interface ChaosOptions {
  /** Fault cycles over all scenarios. */
  cycles: number;
  /** Inputs per parser. */
  fuzz: number;
  seed: number;
  only?: ScenarioName[];
  /** Progress lines on stderr. */
  log?: (line: string) => void;
}

/** Runs the suite; one report per scenario, in order. */
export async function runChaos(opts: ChaosOptions): Promise<Map<ScenarioName, ChaosReport>> {
  const out = new Map<ScenarioName, ChaosReport>();
  const chosen = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.name));
  const weight = chosen.reduce((n, s) => n + s.share, 0) || 1;
  for (const [i, s] of chosen.entries()) {
    const report = new ChaosReport();
    const cycles = Math.max(s.share ? 1 : 0, Math.round(opts.cycles * s.share / weight));
    const started = performance.now();
    opts.log?.(`${s.name}: ${s.what} (${cycles} cycles)`);
    await s.run({
      report,
      rng: createRng(opts.seed + i * 7919),
      cycles,
      fuzz: opts.fuzz,
      log: opts.log,
    });
    opts.log?.(
      `${s.name}: done in ${Math.round((performance.now() - started) / 1000)} s ` +
        JSON.stringify(report.counts),
    );
    out.set(s.name, report);
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cycles: { type: "string" },
      fuzz: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      quiet: { type: "boolean" },
    },
  });
  const seed = values.seed ? Number(values.seed) : Date.now() % 1_000_000;
  const only = values.only?.split(",").map((s) => s.trim()) as ScenarioName[] | undefined;
  const log = values.quiet ? undefined : (line: string) => console.error(`[chaos] ${line}`);
  log?.(`seed ${seed}`);
  const reports = await runChaos({
    cycles: values.cycles ? Number(values.cycles) : FULL.cycles,
    fuzz: values.fuzz ? Number(values.fuzz) : FULL.fuzz,
    seed,
    only,
    log,
  });
  const total = ChaosReport.sum([...reports.values()]);
  for (const f of total.findings) {
    console.error(
      `[chaos] finding ${f.kind} in ${f.scenario}` +
        `${f.cycle !== undefined ? ` (cycle ${f.cycle}, seed ${seed})` : ""}: ${f.what}`,
    );
  }
  console.log(JSON.stringify(total.counts));
  Deno.exit(Object.keys(total.failures()).length ? 1 : 0);
}
