/**
 * The shape of a CNI plugin inside hydra. Every built-in plugin and IPAM
 * module exports one of these; the skel (`skel.ts`) drives it from a process
 * invocation, and the meta-CNI drives it in-process with the same inputs.
 *
 * @module
 */

import type { AnyResult, CmdArgs } from "./types.ts";

/** A CNI plugin implemented in hydra. */
export interface Plugin {
  /** The reference `type` this plugin mirrors, e.g. "bridge", "host-local". */
  readonly kind: string;
  /** Spec versions this plugin accepts. */
  readonly supportedVersions: readonly string[];
  /** ADD: returns the result in the config's cniVersion (see convert.ts). */
  add(args: CmdArgs): Promise<AnyResult>;
  /** DEL: must succeed when what it would remove is already gone. */
  del(args: CmdArgs): Promise<void>;
  /** CHECK: throws a CniError when the attachment is not as ADD left it. */
  check(args: CmdArgs): Promise<void>;
  /** STATUS: throws CniError 50/51 when the plugin cannot serve ADD. */
  status?(args: CmdArgs): Promise<void>;
  /** GC: releases resources of attachments not listed as valid. */
  gc?(args: CmdArgs): Promise<void>;
}
