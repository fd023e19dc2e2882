/**
 * "The attachments on this node": which pod's network namespace holds
 * which interface of which secondary network, with its addresses. The
 * policy role needs only this of the attachment engine, through
 * {@link AttachmentSource}; `attachments_records.ts` implements it from the
 * records hydra keeps on disk.
 *
 * @module
 */

import type { IpAddr } from "../ipaddr/ip.ts";

/** One secondary interface of a pod. */
export interface AttachedInterface {
  /** The network as network-status names it ("namespace/name" of a NAD). */
  network: string;
  /** The interface inside the pod's namespace. */
  ifName: string;
  addresses: readonly IpAddr[];
}

/** A pod sandbox on this node and its secondary interfaces. */
export interface PodAttachment {
  pod: { namespace: string; name: string; uid: string };
  /** Path of the sandbox's network namespace. */
  netns: string;
  interfaces: readonly AttachedInterface[];
}

/** Where the attachments on this node come from. */
export interface AttachmentSource {
  /** Every attachment on this node now. */
  list(): Promise<PodAttachment[]>;
  /**
   * Calls `onChange` whenever the list may have changed (calls may come in
   * bursts, and sometimes when nothing changed); `stop` ends it.
   */
  watch(onChange: () => void): { stop(): Promise<void> };
}
