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
 * When the networks use hydra-bridge or hydra-macvlan, {@link warmAttachPath}
 * goes further and runs a whole attachment (meta-CNI, bridge and veth pair,
 * macvlan, hydra-ipam, addresses and routes, the DEL after it) in two
 * namespaces of its own that no other process can see and that vanish
 * with it.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import { invokeInProcess } from "../cni/skel.ts";
import type { CmdArgs } from "../cni/types.ts";
import { hostLockPath } from "../plugins/host_lock.ts";
import { BUILTINS, loadBuiltin } from "../engine/builtins.ts";
import {
  addLink,
  closeFd,
  closeHandle,
  createAnonymousNetns,
  enterNetns,
  findLink,
  type Handle,
  listAddrs,
  openHandle,
  setLinkUp,
  sysctlRead,
  withHandle,
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
  log.debug("kernel path warmed up", { ms: elapsed(t0) });
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
  log.debug("IPAM path warmed up", { ms: elapsed(t0) });
}

function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

/** The main plugins {@link warmAttachPath} knows how to run without touching the node. */
export const WARMABLE_PLUGINS: readonly string[] = ["hydra-bridge", "hydra-macvlan"];

/**
 * The networks of the warm-up: one per plugin of `plugins` it can run,
 * each with hydra-ipam on a documentation subnet, the bridge one with a
 * route; the macvlan one sits on `master`.
 */
function warmNetworks(plugins: readonly string[], dir: string, bridge: string, master: string) {
  const ipam = (subnet: string, routes?: { dst: string }[]) => ({
    type: "hydra-ipam",
    subnet,
    dataDir: `${dir}/ipam`,
    ...(routes ? { routes } : {}),
  });
  const nets: Record<string, unknown>[] = [];
  if (plugins.includes("hydra-bridge")) {
    nets.push({
      cniVersion: "1.1.0",
      name: "hydra-warm-bridge",
      type: "hydra-bridge",
      bridge,
      ipam: ipam("192.0.2.0/24", [{ dst: "203.0.113.0/24" }]),
    });
  }
  if (plugins.includes("hydra-macvlan")) {
    nets.push({
      cniVersion: "1.1.0",
      name: "hydra-warm-macvlan",
      type: "hydra-macvlan",
      master,
      mode: "bridge",
      ipam: ipam("198.51.100.0/24"),
    });
  }
  return nets;
}

/**
 * Runs one meta-CNI ADD and DEL, in process as a pod's attachment runs, of
 * a network for each of `plugins` that is in {@link WARMABLE_PLUGINS}
 * (with hydra-ipam), inside two anonymous namespaces: one stands in for
 * the node (this thread enters it for the while: call this before anything
 * else opens sockets) and holds the bridge and the macvlan's master, one
 * for the pod. Stores and caches go to a temporary folder; closing the
 * namespaces removes every link. Logs how long it took and the addresses
 * the pod's side had after ADD; a failure is only logged.
 */
export async function warmAttachPath(log: Logger, plugins: readonly string[]): Promise<void> {
  const t0 = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "hydra-warm-" });
  const bridge = `hywarm${crypto.randomUUID().slice(0, 8)}`;
  const held: number[] = [];
  let leave: (() => void) | undefined;
  let addresses: string[] = [];
  try {
    const meta = await loadBuiltin("hydra");
    const delegates = warmNetworks(plugins, dir, bridge, "hywarm-master");
    if (!meta || !delegates.length) return;
    const node = createAnonymousNetns();
    held.push(node);
    const pod = createAnonymousNetns();
    held.push(pod);
    const conf = new TextEncoder().encode(JSON.stringify({
      cniVersion: "1.1.0",
      name: "hydra-warm-up",
      type: "hydra",
      cacheDir: `${dir}/cache`,
      logLevel: "error",
      delegates,
    }));
    leave = enterNetns({ fd: node });
    if (plugins.includes("hydra-macvlan")) {
      withHandle({}, (h) => {
        addLink(h, { kind: "veth", name: "hywarm-master", peer: { name: "hywarm-peer" } });
        setLinkUp(h, "hywarm-master");
      });
    }
    for (const command of ["ADD", "DEL"]) {
      const out = await invokeInProcess(
        meta,
        {
          CNI_COMMAND: command,
          CNI_CONTAINERID: "hydra-warm-up",
          CNI_NETNS: `/proc/${Deno.pid}/fd/${pod}`,
          CNI_IFNAME: "eth0",
          CNI_ARGS: "",
          // Built-ins run in this process; the path is never searched for them.
          CNI_PATH: "/opt/cni/bin",
        },
        conf,
        BUILTINS,
      );
      if (out.code !== 0) throw new Error(`${command}: ${out.stdout.trim()}`);
      if (command === "ADD") {
        addresses = withHandle(
          { netnsFd: pod },
          (h) => listAddrs(h).filter((a) => a.scope === 0).map((a) => a.cidr).sort(),
        );
      }
    }
  } catch (err) {
    log.warn("attach path warm-up failed", {
      error: err instanceof Error ? err.message : String(err),
    });
    return;
  } finally {
    leave?.();
    for (const fd of held) closeFd(fd);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(hostLockPath(`bridge-${bridge}`)).catch(() => {});
  }
  log.debug("attach path warmed up", { ms: elapsed(t0), plugins, addresses });
}
