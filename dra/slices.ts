/**
 * Publishing the node's devices as ResourceSlices: one pool named after the
 * node, split into slices of at most 128 devices (the API's limit), named
 * `<node>-hydra-<n>` and owned by the Node (they go with it). A change
 * bumps the pool's generation, writes every slice with it and deletes
 * slices past the new count, so the scheduler never mixes two generations.
 * Nothing is written when the devices did not change.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { isConflict, isNotFound } from "../kube/errors.ts";
import type { Device } from "./devices.ts";
import { DRIVER_NAME } from "../drasandbox/names.ts";

/** The API's limit of devices per slice. */
export const MAX_DEVICES_PER_SLICE = 128;

const SLICES = "/apis/resource.k8s.io/v1/resourceslices";

/** A ResourceSlice as far as hydra reads and writes it. */
export interface ResourceSlice {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    resourceVersion?: string;
    ownerReferences?: Record<string, unknown>[];
  };
  spec: {
    driver: string;
    nodeName?: string;
    pool: { name: string; generation: number; resourceSliceCount: number };
    devices: Device[];
  };
}

/** Where slices go. */
export interface SliceTarget {
  client: KubeClient;
  nodeName: string;
  /** The Node's UID, for the owner reference; none when unknown. */
  nodeUid?: string;
}

/** Slice `i` of a node's pool. */
export function sliceName(nodeName: string, i: number): string {
  return `${nodeName}-hydra-${i}`;
}

function chunks(devices: readonly Device[]): Device[][] {
  const out: Device[][] = [];
  for (let i = 0; i < devices.length; i += MAX_DEVICES_PER_SLICE) {
    out.push(devices.slice(i, i + MAX_DEVICES_PER_SLICE));
  }
  return out.length ? out : [[]];
}

/** The node's slices of this driver, as stored. */
export async function listOwnSlices(t: SliceTarget): Promise<ResourceSlice[]> {
  const list = await t.client.list<ResourceSlice>(SLICES, {
    fieldSelector: `spec.nodeName=${t.nodeName},spec.driver=${DRIVER_NAME}`,
  });
  return list.items;
}

/** JSON with object keys sorted, so stored and wanted devices compare by content. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().filter((k) => o[k] !== undefined)
        .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")
    }}`;
  }
  return JSON.stringify(value);
}

function sameDevices(
  nodeName: string,
  stored: readonly ResourceSlice[],
  wanted: readonly Device[][],
): boolean {
  if (stored.length !== wanted.length) return false;
  const gen = stored[0].spec.pool.generation;
  const byName = new Map(stored.map((s) => [s.metadata.name, s]));
  return wanted.every((devices, i) => {
    const s = byName.get(sliceName(nodeName, i));
    return s !== undefined && s.spec.pool.generation === gen &&
      s.spec.pool.resourceSliceCount === wanted.length &&
      canonicalJson(s.spec.devices ?? []) === canonicalJson(devices);
  });
}

function sliceObject(
  t: SliceTarget,
  i: number,
  count: number,
  generation: number,
  devices: Device[],
) {
  const metadata: ResourceSlice["metadata"] = { name: sliceName(t.nodeName, i) };
  if (t.nodeUid) {
    metadata.ownerReferences = [{
      apiVersion: "v1",
      kind: "Node",
      name: t.nodeName,
      uid: t.nodeUid,
      controller: true,
    }];
  }
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceSlice",
    metadata,
    spec: {
      driver: DRIVER_NAME,
      nodeName: t.nodeName,
      pool: { name: t.nodeName, generation, resourceSliceCount: count },
      devices,
    },
  };
}

/**
 * Makes the node's slices hold `devices` (sorted by the caller). Returns
 * true when something was written.
 */
export async function publishDevices(t: SliceTarget, devices: readonly Device[]): Promise<boolean> {
  const wanted = chunks(devices);
  const stored = await listOwnSlices(t);
  if (sameDevices(t.nodeName, stored, wanted)) return false;
  const generation = Math.max(0, ...stored.map((s) => s.spec.pool.generation)) + 1;
  const byName = new Map(stored.map((s) => [s.metadata.name, s]));
  for (const [i, chunk] of wanted.entries()) {
    const obj = sliceObject(t, i, wanted.length, generation, chunk);
    const old = byName.get(obj.metadata.name);
    if (old) {
      const body = {
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: old.metadata.resourceVersion },
      };
      await t.client.update(`${SLICES}/${obj.metadata.name}`, body);
    } else {
      try {
        await t.client.create(SLICES, obj);
      } catch (err) {
        if (!isConflict(err)) throw err;
        throw new Error(`slice ${obj.metadata.name} appeared meanwhile; publishing again`);
      }
    }
    byName.delete(obj.metadata.name);
  }
  for (const name of byName.keys()) {
    try {
      await t.client.delete(`${SLICES}/${name}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return true;
}
