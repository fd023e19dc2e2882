/**
 * Making pods' tables what the compiler says: renders each pod's rules,
 * writes only the tables whose text changed since the last write, several
 * namespaces at once, and fails closed when a table cannot be written:
 *
 * 1. the full table, in one transaction (the old rules stay until it commits);
 * 2. if nftables refuses it, the fail-closed table: the same interfaces
 *    isolated the same ways, admitting only replies;
 * 3. if that fails too, the pod's namespace keeps whatever it had, and the
 *    pod is reported failed (the caller retries).
 *
 * A namespace that no longer exists is no error: its pod is gone. A path
 * that is this process's own namespace (the node's) is refused.
 *
 * @module
 */

import { hasErrno } from "../netlink/errors.ts";
import { sameNetns } from "../netlink/netns.ts";
import { runNft } from "../nft/run.ts";
import type { PodRules } from "./compile.ts";
import {
  POLICY_TABLE,
  removeTableText,
  type RenderedTable,
  renderFailClosed,
  renderTable,
} from "./render.ts";

/** How tables reach the kernel; a seam for tests of the failure paths. */
export interface NftDriver {
  /** Applies one transaction in the namespace at `netns`. */
  apply(netns: string, text: string): Promise<void>;
  /** Whether hydra's table exists there. */
  hasTable(netns: string): Promise<boolean>;
}

/** The driver over libnftables. */
export const libnftablesDriver: NftDriver = {
  async apply(netns, text) {
    await runNft(text, { netns });
  },
  async hasTable(netns) {
    const out = await runNft("list tables", { netns, json: true });
    const tables = (JSON.parse(out) as { nftables: { table?: { name: string } }[] }).nftables;
    return tables.some((t) => t.table?.name === POLICY_TABLE);
  },
};

/** What a pod's namespace should hold. */
export interface DesiredTable {
  netns: string;
  /** "namespace/name", for logs and events. */
  pod: string;
  rules: PodRules;
}

/** Which pod a table is, and when its write ended (`Date.now()`). */
interface OutcomeBase {
  netns: string;
  pod: string;
  at: number;
}

/** How a pod's table ended up after a sync. */
export type TableOutcome =
  & OutcomeBase
  & (
    | { state: "applied"; rules: number }
    | { state: "removed" }
    | { state: "fail_closed"; rules: number; error: string }
    | { state: "failed"; error: string }
    | { state: "gone" }
  );

interface Written {
  text: string;
  rules: number;
  failClosed: boolean;
}

/** Options of {@link createEnforcer}. */
export interface EnforcerOptions {
  driver?: NftDriver;
  /** Namespaces written at once; 32. */
  maxParallel?: number;
}

/** The enforcer: remembers what it wrote where. */
export interface Enforcer {
  /**
   * Writes what changed; namespaces not in `desired` are forgotten (their
   * pods left this node). Resolves with the outcome of each table written.
   */
  sync(desired: readonly DesiredTable[]): Promise<TableOutcome[]>;
  /** Rules in the tables written, and pods by state. */
  totals(): { rules: number; enforced: number; failClosed: number };
  /** Forgets what was written, so the next sync writes every table again. */
  forget(): void;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs `jobs` with at most `n` at once. */
async function pool<T>(jobs: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, worker));
  return out;
}

/** Creates an enforcer that knows nothing of the tables yet (as after a start). */
export function createEnforcer(opts: EnforcerOptions = {}): Enforcer {
  const driver = opts.driver ?? libnftablesDriver;
  const written = new Map<string, Written | "none">();

  async function write(d: DesiredTable): Promise<TableOutcome | undefined> {
    const { netns, pod } = d;
    let table: RenderedTable;
    try {
      table = renderTable(d.rules);
    } catch (err) {
      // A value that cannot be written into nftables syntax (an interface name no CNI should
      // have made): nothing can name that interface, so nothing is written for this pod.
      return { netns, pod, at: Date.now(), state: "failed", error: message(err) };
    }
    const before = written.get(netns);
    if (before !== undefined && before !== "none" && before.text === table.text) return undefined;
    if (before === "none" && table.rules === 0) return undefined;
    try {
      if (sameNetns(netns)) throw new Error(`${netns} is the node's own network namespace`);
      if (table.rules === 0) {
        if (before === undefined && !await driver.hasTable(netns)) {
          written.set(netns, "none");
          return undefined;
        }
        await driver.apply(netns, removeTableText());
        written.set(netns, "none");
        return { netns, pod, at: Date.now(), state: "removed" };
      }
      await driver.apply(netns, table.text);
      written.set(netns, { ...table, failClosed: false });
      return { netns, pod, at: Date.now(), state: "applied", rules: table.rules };
    } catch (err) {
      if (hasErrno(err, "ENOENT")) {
        written.delete(netns);
        return { netns, pod, at: Date.now(), state: "gone" };
      }
      return await failClose(d, message(err));
    }
  }

  async function failClose(d: DesiredTable, error: string): Promise<TableOutcome> {
    const { netns, pod } = d;
    const closed = renderFailClosed(d.rules);
    if (closed.rules === 0) return { netns, pod, at: Date.now(), state: "failed", error };
    try {
      if (sameNetns(netns)) return { netns, pod, at: Date.now(), state: "failed", error };
      await driver.apply(netns, closed.text);
      written.set(netns, { ...closed, failClosed: true });
      return { netns, pod, at: Date.now(), state: "fail_closed", rules: closed.rules, error };
    } catch (err) {
      // Forget what was there: the next sync writes it again whatever it was.
      written.delete(netns);
      return {
        netns,
        pod,
        at: Date.now(),
        state: "failed",
        error: `${error}; fail-closed table: ${message(err)}`,
      };
    }
  }

  return {
    async sync(desired) {
      const keep = new Set(desired.map((d) => d.netns));
      for (const netns of [...written.keys()]) if (!keep.has(netns)) written.delete(netns);
      const outcomes = await pool(desired.map((d) => () => write(d)), opts.maxParallel ?? 32);
      return outcomes.filter((o): o is TableOutcome => o !== undefined);
    },
    forget() {
      written.clear();
    },
    totals() {
      let rules = 0, enforced = 0, failClosed = 0;
      for (const w of written.values()) {
        if (w === "none") continue;
        rules += w.rules;
        if (w.failClosed) failClosed++;
        else enforced++;
      }
      return { rules, enforced, failClosed };
    },
  };
}
