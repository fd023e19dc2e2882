/**
 * What a chaos run found: the counters it prints as JSON, and for every
 * count but cycles, killed and fuzzInputs the findings behind it, each
 * with what to do to see it again (scenario, seed, cycle, the state left).
 *
 * @module
 */

/** The counters of a run, as printed. */
export interface ChaosCounts {
  /** Fault cycles run (a cycle: one fault injected, recovery, the checks). */
  cycles: number;
  /** Processes killed with SIGKILL while they worked. */
  killed: number;
  /** Links left in a namespace with no live container to own them. */
  leakedLinks: number;
  /** Addresses left on links, or held in an IPAM store, for no live container. */
  leakedAddresses: number;
  /** Files left in state folders for no live container (temp and quarantined files too). */
  leakedFiles: number;
  /** One address given to two live containers (or held for another one). */
  duplicates: number;
  /** An ADD or DEL (or a sync) that cannot complete once the fault is gone. */
  stuck: number;
  /** A long-running role that died from a request, or a parser that threw what it must not. */
  crashes: number;
  /** Inputs fed to parsers. */
  fuzzInputs: number;
}

/** Kinds of finding: the counters that must stay 0. */
export type FindingKind =
  | "leakedLinks"
  | "leakedAddresses"
  | "leakedFiles"
  | "duplicates"
  | "stuck"
  | "crashes";

/** One thing found, with how to see it again. */
export interface Finding {
  kind: FindingKind;
  scenario: string;
  /** The cycle (or fuzz input) it was found in. */
  cycle?: number;
  what: string;
}

/** Counters and findings, filled in by the scenarios. */
export class ChaosReport {
  readonly counts: ChaosCounts = {
    cycles: 0,
    killed: 0,
    leakedLinks: 0,
    leakedAddresses: 0,
    leakedFiles: 0,
    duplicates: 0,
    stuck: 0,
    crashes: 0,
    fuzzInputs: 0,
  };
  readonly findings: Finding[] = [];
  /** Keys of things found already: a leak seen by many checks counts once. */
  private readonly seen = new Set<string>();
  /** Findings kept in full; the rest are counted only. */
  readonly keep: number;

  constructor(keep = 200) {
    this.keep = keep;
  }

  /** Records `n` findings of one kind. */
  find(kind: FindingKind, scenario: string, what: string, cycle?: number, n = 1): void {
    if (n <= 0) return;
    this.counts[kind] += n;
    if (this.findings.length < this.keep) this.findings.push({ kind, scenario, cycle, what });
  }

  /**
   * Records one finding about a thing named by `key` (a file, an address
   * and its holder, a link), unless it was recorded before.
   */
  findOnce(kind: FindingKind, key: string, scenario: string, what: string, cycle?: number): void {
    if (this.seen.has(`${kind}|${key}`)) return;
    this.seen.add(`${kind}|${key}`);
    this.find(kind, scenario, what, cycle);
  }

  /** The counts of one scenario's run, as a fresh report, for per-scenario checks. */
  static sum(reports: ChaosReport[]): ChaosReport {
    const out = new ChaosReport();
    for (const r of reports) {
      for (const k of Object.keys(out.counts) as (keyof ChaosCounts)[]) {
        out.counts[k] += r.counts[k];
      }
      out.findings.push(...r.findings.slice(0, Math.max(0, out.keep - out.findings.length)));
    }
    return out;
  }

  /** The counts that must be 0 and are not. */
  failures(): Partial<ChaosCounts> {
    const out: Partial<ChaosCounts> = {};
    for (
      const k of [
        "leakedLinks",
        "leakedAddresses",
        "leakedFiles",
        "duplicates",
        "stuck",
        "crashes",
      ] as const
    ) {
      if (this.counts[k] > 0) out[k] = this.counts[k];
    }
    return out;
  }
}
