/**
 * The `ipam` blocks of hydra's IPAM plugins as {@link Shape}s: what doctor
 * and the installer check a config against, and what each plugin enforces
 * on its exec path. The reference plugins these follow (host-local,
 * static) read the same keys, so their blocks are checked with the same
 * shapes. Data only: loading this costs a plugin exec nothing measurable.
 *
 * @module
 */

import { DNS_SHAPE, ROUTES } from "../cni/conf_schema.ts";
import type { KeySpec, Shape } from "../pkg/schema.ts";

/** whereabouts' spellings in a host-local style block, each with what to write instead. */
const WHEREABOUTS_IN_HOST_LOCAL: Readonly<Record<string, KeySpec>> = {
  range: {
    type: "any",
    unsupported: 'whereabouts\' key; hydra-ipam reads "subnet" (or "ranges")',
  },
  range_start: {
    type: "any",
    unsupported: 'whereabouts\' key; hydra-ipam reads "rangeStart"',
  },
  range_end: { type: "any", unsupported: 'whereabouts\' key; hydra-ipam reads "rangeEnd"' },
  exclude: {
    type: "any",
    unsupported: 'whereabouts\' key; hydra-ipam has no exclusions: narrow "rangeStart"/"rangeEnd"',
  },
  ipRanges: {
    type: "any",
    unsupported: 'whereabouts\' key; hydra-ipam reads "ranges" (a list of range sets)',
  },
};

/** One range of a range set (host-local's `Range`). */
export const RANGE_SHAPE: Shape = {
  name: "range",
  keys: {
    subnet: { type: "string" },
    rangeStart: { type: "string" },
    rangeEnd: { type: "string" },
    gateway: { type: "string" },
  },
};

const IPAM_TYPE: KeySpec = { type: "string" };

/** hydra-ipam's block, and host-local's. */
export const HOST_LOCAL_SHAPE: Shape = {
  name: "hydra-ipam (host-local) block",
  keys: {
    type: IPAM_TYPE,
    routes: ROUTES,
    dataDir: { type: "string" },
    resolvConf: { type: "string" },
    ranges: {
      type: "list",
      items: { type: "list", items: { type: "object", shape: RANGE_SHAPE } },
    },
    // The single-range form that predates `ranges`.
    ...RANGE_SHAPE.keys,
    ...WHEREABOUTS_IN_HOST_LOCAL,
  },
};

/** hydra-static's block, and static's. */
export const STATIC_SHAPE: Shape = {
  name: "hydra-static (static) block",
  keys: {
    type: IPAM_TYPE,
    routes: ROUTES,
    addresses: {
      type: "list",
      items: {
        type: "object",
        shape: {
          name: "address",
          keys: { address: { type: "string" }, gateway: { type: "string" } },
        },
      },
    },
    dns: { type: "object", shape: DNS_SHAPE },
  },
};

/** kube-node's block: hydra-ipam's allocation, ranges from the Node. */
export const KUBE_NODE_SHAPE: Shape = {
  name: "kube-node block",
  keys: {
    type: IPAM_TYPE,
    routes: ROUTES,
    dataDir: { type: "string" },
    resolvConf: { type: "string" },
    annotation: { type: "string" },
    "ipv4-namespaces": { type: "strings" },
    kubeconfig: { type: "string" },
    nodeName: { type: "string" },
    daemonSocket: { type: "string" },
    nodeCacheTTL: { type: "number" },
    apiTimeout: { type: "number" },
    ranges: {
      type: "any",
      unsupported: "kube-node takes its ranges from the Node (podCIDRs or the annotation)",
    },
    subnet: {
      type: "any",
      unsupported: "kube-node takes its ranges from the Node (podCIDRs or the annotation)",
    },
  },
};

/** The IPAM shapes by `ipam.type`: hydra's plugins and the reference ones they follow. */
export const IPAM_SHAPES: Readonly<Record<string, Shape>> = {
  "hydra-ipam": HOST_LOCAL_SHAPE,
  "host-local": HOST_LOCAL_SHAPE,
  "hydra-static": STATIC_SHAPE,
  static: STATIC_SHAPE,
  "kube-node": KUBE_NODE_SHAPE,
};
