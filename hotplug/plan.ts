/**
 * What a change of a running pod's selection asks for: which recorded
 * networks go, which selections come and on which interface. Pure: the
 * record's networks and the annotation's selections in, the steps out.
 *
 * - A recorded network the pod selected stays while a selection names the
 *   same network and, if the selection names an interface, that one.
 *   Selections naming an interface are matched first, so "a, a@net1"
 *   keeps a@net1 for the second element whatever the order.
 * - Every other selected network goes (the default network and the conf's
 *   `defaultNetworks` were not selected: they always stay).
 * - Every selection left comes, in annotation order, on the interface it
 *   names, else on the first netN (N from 1) that no network that stays
 *   has, no selection names, and no other link of the pod has.
 * - An interface a selection names that a network that stays (or another
 *   link of the pod) has is refused for that selection alone.
 *
 * @module
 */

import { DEFAULT_POD_IFNAME } from "../kube/delegate.ts";
import type { NetworkSelection } from "../kube/selection.ts";

/** A recorded network of the pod. */
export interface Recorded {
  /** "namespace/name" of its NAD; undefined for a network named otherwise. */
  network?: string;
  ifName: string;
  /** The pod's annotation selected it. */
  selected: boolean;
}

/** One selection to attach. */
export interface Arrival {
  sel: NetworkSelection;
  /** 1-based position in the annotation. */
  element: number;
  ifName: string;
}

/** A selection that cannot be attached as asked. */
export interface Refusal {
  sel: NetworkSelection;
  element: number;
  message: string;
}

/** The steps of one change. */
export interface Plan {
  /** Recorded networks to detach, last recorded first. */
  leave: Recorded[];
  /** Selections to attach, in annotation order. */
  arrive: Arrival[];
  refused: Refusal[];
}

/** A selection's network as recorded: "namespace/name". */
export function networkOf(sel: NetworkSelection): string {
  return `${sel.namespace}/${sel.name}`;
}

/**
 * Problems of the annotation as a whole (the parser has checked each name
 * already): the default network's interface asked for, or one interface
 * two selections both ask for. Undefined when there are none.
 */
export function selectionProblem(selections: readonly NetworkSelection[]): string | undefined {
  const seen = new Map<string, number>();
  for (const [i, sel] of selections.entries()) {
    if (!sel.interface) continue;
    if (sel.interface === DEFAULT_POD_IFNAME) {
      return `element ${i + 1}: interface "${sel.interface}" belongs to the pod's default network`;
    }
    const other = seen.get(sel.interface);
    if (other !== undefined) {
      return `elements ${other + 1} and ${i + 1} both ask for interface "${sel.interface}"`;
    }
    seen.set(sel.interface, i);
  }
  return undefined;
}

/** Pairs selections with recorded networks; returns the recorded index per selection. */
function match(recorded: readonly Recorded[], selections: readonly NetworkSelection[]) {
  const taken = new Set<number>();
  const matched: (number | undefined)[] = selections.map(() => undefined);
  const pass = (named: boolean) => {
    for (const [i, sel] of selections.entries()) {
      if (Boolean(sel.interface) !== named) continue;
      const j = recorded.findIndex((r, k) =>
        !taken.has(k) && r.selected && r.network === networkOf(sel) &&
        (!sel.interface || sel.interface === r.ifName)
      );
      if (j >= 0) {
        taken.add(j);
        matched[i] = j;
      }
    }
  };
  pass(true);
  pass(false);
  return { matched, taken };
}

/**
 * The plan for a pod whose record holds `recorded` and whose annotation
 * now selects `selections` (already checked with {@link selectionProblem}).
 * `podLinks` are the interface names in the pod's namespace.
 */
export function planChange(
  recorded: readonly Recorded[],
  selections: readonly NetworkSelection[],
  podLinks: ReadonlySet<string>,
): Plan {
  const { matched, taken } = match(recorded, selections);
  const leave = recorded.filter((r, k) => r.selected && !taken.has(k)).reverse();
  const leaving = new Set(leave.map((r) => r.ifName));
  const staying = new Set(recorded.filter((r) => !leaving.has(r.ifName)).map((r) => r.ifName));
  // Links of the pod that are not recorded networks (eth0 of the runtime's CNI, lo, …).
  const recordedNames = new Set(recorded.map((r) => r.ifName));
  const foreign = [...podLinks].filter((l) => !recordedNames.has(l));
  const busy = new Set([...staying, ...foreign, DEFAULT_POD_IFNAME]);
  const named = new Set(
    selections.filter((s, i) => matched[i] === undefined && s.interface).map((s) => s.interface!),
  );
  const arrive: Arrival[] = [];
  const refused: Refusal[] = [];
  let n = 1;
  for (const [i, sel] of selections.entries()) {
    if (matched[i] !== undefined) continue;
    if (sel.interface) {
      if (busy.has(sel.interface)) {
        refused.push({
          sel,
          element: i + 1,
          message: `interface "${sel.interface}" is already taken in the pod`,
        });
        continue;
      }
      arrive.push({ sel, element: i + 1, ifName: sel.interface });
      busy.add(sel.interface);
      continue;
    }
    while (busy.has(`net${n}`) || named.has(`net${n}`)) n++;
    arrive.push({ sel, element: i + 1, ifName: `net${n}` });
    busy.add(`net${n}`);
  }
  return { leave, arrive, refused };
}
