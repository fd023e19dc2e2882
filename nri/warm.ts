/**
 * Start-up work that would otherwise land on the first RunPodSandbox after
 * `hydra nri serve` starts, inside that request's budget: binding libc's
 * symbols (done on first use, a few milliseconds), and the first pass
 * through the netlink, namespace and sysctl code and through hydra-ipam
 * (compiling it costs the first pod several milliseconds more).
 *
 * Nothing here changes the kernel or any store in use: a netlink handle is
 * opened in the daemon's own namespace (once directly, once through its
 * namespace file, as a pod's handle is opened), `lo` and its addresses are
 * looked up, a sysctl is read; hydra-ipam allocates and releases one
 * address of a documentation subnet (192.0.2.0/24) in a store of its own in
 * a temporary folder, removed afterwards. A failure is only logged: the first pod then
 * pays, as it did before.
 *
 * @module
 */

import type { Logger } from "../cni/log.ts";
import type { CmdArgs } from "../cni/types.ts";
import { loadBuiltin } from "../plugins/registry.ts";
import {
  closeHandle,
  findLink,
  type Handle,
  listAddrs,
  openHandle,
  sysctlRead,
} from "../netlink/mod.ts";

/** The daemon's own network namespace, as a path a pod's namespace is opened by. */
const OWN_NETNS = "/proc/thread-self/ns/net";

function lookAround(h: Handle): void {
  const lo = findLink(h, "lo");
  if (lo) listAddrs(h, { link: lo.index });
  findLink(h, "hydra-warm-none");
}

/** Runs the read-only warm-up; logs how long it took. */
export function warmKernelPath(log: Logger): void {
  const t0 = performance.now();
  try {
    for (const opts of [{}, { netnsPath: OWN_NETNS }]) {
      const h = openHandle(opts);
      try {
        lookAround(h);
      } finally {
        closeHandle(h);
      }
    }
    sysctlRead(OWN_NETNS, "net/ipv4/ip_forward");
  } catch (err) {
    log.warn("kernel warm-up failed", { error: err instanceof Error ? err.message : String(err) });
    return;
  }
  log.debug("kernel path warmed up", { ms: Math.round((performance.now() - t0) * 10) / 10 });
}

/**
 * Runs one hydra-ipam ADD and DEL in a temporary store, calling the plugin
 * directly (its CNI entry would refuse the daemon's own namespace as
 * CNI_NETNS; the address plugin never enters it); logs how long it took.
 */
export async function warmIpam(log: Logger): Promise<void> {
  const t0 = performance.now();
  const dataDir = await Deno.makeTempDir({ prefix: "hydra-warm-" });
  try {
    const plugin = await loadBuiltin("hydra-ipam");
    if (!plugin) return;
    const config = {
      cniVersion: "1.1.0",
      name: "hydra-warm-up",
      type: "hydra-ipam",
      ipam: { type: "hydra-ipam", subnet: "192.0.2.0/24", dataDir },
    };
    const args = (command: "ADD" | "DEL"): CmdArgs => ({
      command,
      containerId: "hydra-warm-up",
      netns: "",
      ifName: "warm0",
      args: "",
      path: [],
      stdinData: new TextEncoder().encode(JSON.stringify(config)),
      config,
    });
    await plugin.add(args("ADD"));
    await plugin.del(args("DEL"));
  } catch (err) {
    log.warn("IPAM warm-up failed", { error: err instanceof Error ? err.message : String(err) });
    return;
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  log.debug("IPAM path warmed up", { ms: Math.round((performance.now() - t0) * 10) / 10 });
}
