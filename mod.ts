/**
 * hydra as a library: the CNI contract, the kernel layer, the built-in
 * plugins and IPAM, the attachment engine, Kubernetes network selection and
 * status, and the NRI protocol. The `hydra` executable (main.ts) is built from these.
 *
 * ```ts
 * import { invokePlugin, loadBuiltin, parseNetworkSelection } from "./mod.ts";
 * ```
 *
 * @module
 */

// CNI contract
export * from "./cni/types.ts";
export { asCniError, CniError, ErrorCode, type ErrorJson } from "./cni/errors.ts";
export type { Builtins, Plugin } from "./cni/types.ts";
export { convertResult, fromInternal, parseResult, toInternal } from "./cni/convert.ts";
export { dispatch, invokeInProcess, runSkel } from "./cni/skel.ts";
export { execPlugin, findInPath, invokePlugin, type PluginRequest } from "./cni/invoke.ts";
export {
  addNetworkList,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  type ListOptions,
  type RuntimeConf,
  statusNetworkList,
} from "./cni/list.ts";
export {
  type ConfList,
  loadConfDir,
  loadConfFile,
  loadNetworkConf,
  parseNetworkConfig,
} from "./cni/conf.ts";
export { type CacheEntry, DEFAULT_CACHE_DIR } from "./cni/cache.ts";

// The attachment engine (the meta-CNI): attach a container to several networks, detach it
export {
  attach,
  type AttachedNetwork,
  type AttachOutcome,
  type AttachRequest,
  checkAttachment,
  detach,
  type NetworkPlan,
} from "./engine/attach.ts";

// Built-in plugins and IPAM, by the name they are invoked as
// (BUILTINS is what to hand invokePlugin, the list runner or the skel as `builtins` so that
// they run hydra's plugins in-process; without it every plugin is exec'd from CNI_PATH.)
export { builtinNames, BUILTINS, isBuiltin, loadBuiltin } from "./engine/builtins.ts";

// Kubernetes: network selection and status reporting (pure functions)
export { parseNetworkSelection } from "./kube/selection.ts";
export { mergeNetworkStatus, networkStatusEntries } from "./kube/status.ts";

// Kernel layer
export * as netlink from "./netlink/mod.ts";
