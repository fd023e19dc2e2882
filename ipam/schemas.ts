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

/** Ignored whereabouts machinery: accepted (a switched-over NAD keeps working), meaning shown. */
function ignored(what: string): KeySpec {
  return { type: "any", foreign: `whereabouts' ${what}: ignored by hydra-pool` };
}

/** Whereabouts keys hydra-pool cannot honour: a warning when it runs, an error in doctor. */
function refused(why: string): KeySpec {
  return { type: "any", unsupported: why };
}

const ETCD = refused(
  "whereabouts' etcd store; hydra-pool keeps its state in the Kubernetes API: remove the key",
);

/** One range of hydra-pool (whereabouts' `RangeConfiguration`): the top-level keys or an `ipRanges` entry. */
const POOL_RANGE_KEYS: Readonly<Record<string, KeySpec>> = {
  range: { type: "string" },
  range_start: { type: "string" },
  range_end: { type: "string" },
  exclude: { type: "strings" },
};

/** hydra-pool's block: whereabouts' keys, plus hydra's own (camelCase). */
export const POOL_SHAPE: Shape = {
  name: "hydra-pool (whereabouts) block",
  keys: {
    type: IPAM_TYPE,
    ...POOL_RANGE_KEYS,
    ipRanges: {
      type: "list",
      items: { type: "object", shape: { name: "hydra-pool range", keys: POOL_RANGE_KEYS } },
    },
    network_name: { type: "string" },
    enable_overlapping_ranges: { type: "boolean" },
    gateway: { type: "string" },
    routes: ROUTES,
    dns: { type: "object", shape: DNS_SHAPE },
    kubernetes: {
      type: "object",
      shape: {
        name: "hydra-pool kubernetes block",
        keys: {
          kubeconfig: {
            type: "string",
            foreign: "whereabouts' kubeconfig: used only when neither ipam.kubeconfig nor " +
              "the one hydra install writes exists",
          },
          k8s_api_root: ignored("API root (unused by whereabouts itself)"),
        },
      },
    },
    kubeconfig: { type: "string" },
    nodeName: { type: "string" },
    daemonSocket: { type: "string" },
    apiTimeout: { type: "number" },
    importWhereabouts: { type: "boolean" },
    datastore: {
      type: "string",
      values: ["kubernetes"],
      foreign: "whereabouts' store: hydra-pool's is always the Kubernetes API",
    },
    node_slice_size: ignored(
      "node slices; hydra-pool always gives each node blocks of 16 addresses, claimed as needed",
    ),
    leader_lease_duration: ignored("lock on every ADD; hydra-pool takes none"),
    leader_renew_deadline: ignored("lock on every ADD; hydra-pool takes none"),
    leader_retry_period: ignored("lock on every ADD; hydra-pool takes none"),
    reconciler_cron_expression: ignored(
      "reconciler schedule; hydra's reclaim is `hydra ipam controller --interval`",
    ),
    sleep_for_race: ignored("test delay"),
    log_file: ignored("log file; hydra-pool logs where its caller (runtime or daemon) logs"),
    log_level: ignored("log level; hydra-pool logs where its caller (runtime or daemon) logs"),
    configuration_path: refused(
      "whereabouts' flat file of defaults; hydra-pool reads only this block: copy the " +
        "file's keys (range, exclude, ...) here",
    ),
    addresses: refused(
      "whereabouts' static addresses, handed out without being recorded; ask for the address " +
        'in the pod\'s network selection ("ips"), which hydra-pool records in the pool',
    ),
    etcd_host: ETCD,
    etcd_username: ETCD,
    etcd_password: ETCD,
    etcd_key_file: ETCD,
    etcd_cert_file: ETCD,
    etcd_ca_cert_file: ETCD,
  },
};

/** The IPAM shapes by `ipam.type`: hydra's plugins and the reference ones they follow. */
export const IPAM_SHAPES: Readonly<Record<string, Shape>> = {
  "hydra-ipam": HOST_LOCAL_SHAPE,
  "host-local": HOST_LOCAL_SHAPE,
  "hydra-static": STATIC_SHAPE,
  static: STATIC_SHAPE,
  "kube-node": KUBE_NODE_SHAPE,
  "hydra-pool": POOL_SHAPE,
};
