/**
 * Small kernel-side helpers the interface plugins share: random host-side
 * names, the default-route interface, the container namespace handle, and
 * an undo list that takes back what a failed ADD did.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  closeHandle,
  findLink,
  type Handle,
  hasErrno,
  listRoutes,
  openHandle,
  RT_TABLE,
} from "../netlink/mod.ts";

/** "veth" and 8 random hex digits: the reference plugins' host-side veth names. */
export function randomVethName(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `veth${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * The name of the interface of the first default route (IPv4 first) in the
 * main table of `h`'s namespace. CniError 7 when there is none.
 */
export function defaultRouteInterface(h: Handle): string {
  for (const r of listRoutes(h, { table: RT_TABLE.MAIN })) {
    if (r.dst !== "0.0.0.0/0" && r.dst !== "::/0") continue;
    const oif = r.oif ?? r.multipath?.[0]?.oif;
    if (!oif) continue;
    const link = findLink(h, oif);
    if (link) return link.name;
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    "no default route interface found: set the underlay device in the config",
  );
}

/** True when a netns path cannot be opened because it is gone. */
export function isNetnsGone(err: unknown): boolean {
  return hasErrno(err, "ENOENT", "EINVAL");
}

/**
 * Opens a handle in the container namespace `netns`, or throws CniError 999
 * naming it. The caller closes it.
 */
export function openNetnsHandle(netns: string): Handle {
  try {
    return openHandle({ netnsPath: netns });
  } catch (e) {
    throw new CniError(
      ErrorCode.Internal,
      `failed to open netns "${netns}": ${(e as Error).message}`,
    );
  }
}

/**
 * Opens a handle in the container namespace for a DEL: undefined when the
 * namespace is already gone (nothing left to clean up in it).
 */
export function openNetnsForDel(netns: string): Handle | undefined {
  if (netns === "") return undefined;
  try {
    return openHandle({ netnsPath: netns });
  } catch (e) {
    if (isNetnsGone(e)) return undefined;
    throw new CniError(
      ErrorCode.Internal,
      `failed to open netns "${netns}": ${(e as Error).message}`,
    );
  }
}

/** Closes handles, ignoring undefined ones. */
export function closeAll(...handles: (Handle | undefined)[]): void {
  for (const h of handles) if (h) closeHandle(h);
}

/**
 * CniError 4 when `ifName` already exists in the container: the spec
 * requires ADD to fail then, and nothing must have been changed yet.
 */
export function assertIfNameFree(h: Handle, ifName: string, netns: string): void {
  if (findLink(h, ifName)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_IFNAME: interface "${ifName}" already exists in netns "${netns}"`,
    );
  }
}

/**
 * Steps to take back, newest first, when an ADD fails part way. Each step
 * runs even when an earlier one failed; failures are reported on stderr so
 * the ADD's own error stays the one returned.
 */
export interface Undo {
  /** Registers a step. */
  push(what: string, step: () => void | Promise<void>): void;
  /** Runs every step, newest first. */
  run(): Promise<void>;
}

/** A fresh, empty {@link Undo} list. */
export function createUndo(): Undo {
  const steps: { what: string; step: () => void | Promise<void> }[] = [];
  return {
    push(what, step) {
      steps.push({ what, step });
    },
    async run() {
      while (steps.length) {
        const { what, step } = steps.pop()!;
        try {
          await step();
        } catch (err) {
          console.error(JSON.stringify({
            level: "warn",
            msg: `undo after a failed ADD: ${what} failed`,
            error: err instanceof Error ? err.message : String(err),
          }));
        }
      }
    },
  };
}
