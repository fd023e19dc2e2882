/**
 * Namespace rules for network selection (Multus's `namespaceIsolation` and
 * `globalNamespaces`): under isolation a pod may use networks of its own
 * namespace and of the global ones only.
 *
 * @module
 */

import { NETWORKS_ANNOTATION, type NetworkSelection, SelectionError } from "./selection.ts";

/** Namespace rules of the meta-CNI configuration. */
export interface NamespacePolicy {
  /** When true, a pod may only use networks from its own namespace or a global one. */
  namespaceIsolation: boolean;
  /** Namespaces whose networks any pod may use under isolation. */
  globalNamespaces: readonly string[];
}

/** Splits the conf's comma-separated `globalNamespaces` string ("default" when unset). */
export function parseGlobalNamespaces(raw: string | undefined): string[] {
  if (raw === undefined || raw === "") return ["default"];
  return raw.split(",").map((s) => s.trim());
}

/**
 * Throws a {@link SelectionError} when namespace isolation forbids the pod
 * from using the selected network.
 */
export function checkNamespaceAccess(
  podNamespace: string,
  sel: NetworkSelection,
  policy: NamespacePolicy,
  annotation: string = NETWORKS_ANNOTATION,
  element?: number,
): void {
  if (!policy.namespaceIsolation || sel.namespace === podNamespace) return;
  if (policy.globalNamespaces.includes(sel.namespace)) return;
  throw new SelectionError(
    annotation,
    `namespace isolation is on: pod in namespace "${podNamespace}" may not use network ` +
      `"${sel.namespace}/${sel.name}" (allowed: its own namespace and ${
        policy.globalNamespaces.map((n) => `"${n}"`).join(", ") || "none"
      })`,
    element,
  );
}
