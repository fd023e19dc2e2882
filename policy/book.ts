/**
 * The policy objects the agent knows and what each enforces now:
 *
 * - a valid policy enforces itself;
 * - an invalid version of a policy that was valid before keeps the last
 *   good version in force (`last_good`);
 * - an invalid policy with no good version enforces its fail-closed
 *   stand-in: the pods, networks and directions it was meant to isolate,
 *   isolated with nothing allowed (`fail_closed`).
 *
 * Last good versions are kept on disk (`<stateDir>/last-good.json`, written
 * atomically), so that a restart of the agent does not turn a policy that
 * had a good version into a fail-closed one.
 *
 * @module
 */

import { ensureDir, readTextIfExists, writeFileAtomic } from "../pkg/fsutil.ts";
import type { EffectivePolicy } from "./compile.ts";
import { type MultiNetworkPolicy, parsePolicy, type PolicyCheck } from "./spec.ts";

/** How a policy object is enforced. */
export type PolicyState = "valid" | "last_good" | "fail_closed";

/** One known policy object. */
export interface BookEntry {
  obj: MultiNetworkPolicy;
  check: PolicyCheck;
  state: PolicyState;
  effective: EffectivePolicy;
  /** resourceVersion of the version in force when it is not this one. */
  inForce?: string;
}

const FILE_KIND = "hydraPolicyLastGoodV1";

/** The book of policies. */
export interface PolicyBook {
  /** Takes a new or changed object; returns its entry. */
  update(obj: MultiNetworkPolicy): BookEntry;
  remove(obj: MultiNetworkPolicy): void;
  entries(): BookEntry[];
  /** Drops kept last-good versions of objects no longer present; saves when it changed. */
  prune(): void;
  /** Resolves when the last-good file holds what the book holds. */
  flush(): Promise<void>;
}

/** Options of {@link openPolicyBook}. */
export interface BookOptions {
  /** Where last good versions are kept; none when undefined. */
  stateDir?: string;
  onError?: (err: unknown) => void;
}

function keyOf(obj: MultiNetworkPolicy): string {
  return obj.metadata.uid || `${obj.metadata.namespace}/${obj.metadata.name}`;
}

/** The minimal object kept as a last good version. */
function keepable(obj: MultiNetworkPolicy): MultiNetworkPolicy {
  return {
    metadata: {
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
      annotations: obj.metadata.annotations,
    },
    spec: obj.spec,
  };
}

function failClosed(obj: MultiNetworkPolicy, check: PolicyCheck): EffectivePolicy {
  const { scope } = check;
  const out: EffectivePolicy = {
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    failClosed: true,
  };
  if (scope.networks) out.networks = scope.networks;
  if (scope.podSelector) out.podSelector = scope.podSelector;
  if (scope.ingress) out.ingress = [];
  if (scope.egress) out.egress = [];
  return out;
}

async function loadLastGood(dir: string): Promise<Map<string, MultiNetworkPolicy>> {
  const text = await readTextIfExists(`${dir}/last-good.json`);
  const out = new Map<string, MultiNetworkPolicy>();
  if (!text) return out;
  try {
    const raw = JSON.parse(text) as {
      kind?: string;
      policies?: Record<string, MultiNetworkPolicy>;
    };
    if (raw.kind !== FILE_KIND || typeof raw.policies !== "object") return out;
    for (const [k, v] of Object.entries(raw.policies ?? {})) {
      if (v?.metadata?.namespace && v.metadata.name && parsePolicy(v).policy) out.set(k, v);
    }
  } catch {
    // A damaged file holds nothing usable; policies then fail closed until valid again.
  }
  return out;
}

/** Opens the book, reading last good versions kept by an earlier run. */
export async function openPolicyBook(opts: BookOptions = {}): Promise<PolicyBook> {
  const lastGood = opts.stateDir ? await loadLastGood(opts.stateDir) : new Map();
  const entries = new Map<string, BookEntry>();
  let saving = Promise.resolve();
  let dirty = false;

  const save = () => {
    dirty = true;
    if (!opts.stateDir) return;
    const dir = opts.stateDir;
    saving = saving.then(async () => {
      if (!dirty) return;
      dirty = false;
      const policies = Object.fromEntries(lastGood);
      await ensureDir(dir, 0o700);
      await writeFileAtomic(`${dir}/last-good.json`, JSON.stringify({ kind: FILE_KIND, policies }));
    }).catch((err) => opts.onError?.(err));
  };

  return {
    update(obj) {
      const key = keyOf(obj);
      const check = parsePolicy(obj);
      let entry: BookEntry;
      if (check.policy) {
        entry = { obj, check, state: "valid", effective: check.policy };
        const kept = lastGood.get(key);
        if (kept?.metadata.resourceVersion !== obj.metadata.resourceVersion) {
          lastGood.set(key, keepable(obj));
          save();
        }
      } else {
        const kept = lastGood.get(key);
        const good = kept && parsePolicy(kept).policy;
        entry = good
          ? {
            obj,
            check,
            state: "last_good",
            effective: good,
            inForce: kept.metadata.resourceVersion,
          }
          : { obj, check, state: "fail_closed", effective: failClosed(obj, check) };
      }
      entries.set(key, entry);
      return entry;
    },
    remove(obj) {
      const key = keyOf(obj);
      entries.delete(key);
      if (lastGood.delete(key)) save();
    },
    entries: () => [...entries.values()],
    prune() {
      let changed = false;
      for (const key of [...lastGood.keys()]) {
        if (!entries.has(key)) changed = lastGood.delete(key) || changed;
      }
      if (changed) save();
    },
    flush: () => saving,
  };
}
