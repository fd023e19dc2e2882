/**
 * A world for `hydra nri serve` end-to-end tests: a real containerd (CRI +
 * NRI) whose default CNI is the reference bridge with host-local, hydra's
 * networks as conf files, and `bin/hydra nri serve` run as a process in
 * containerd's network namespace (so the host side of hydra's networks —
 * the hydra-bridge, the macvlan parent — lands there too).
 *
 * Networks in the conf folder:
 * - `blue`: hydra-bridge + hydra-ipam, with a route to `blueRoute`;
 * - `red`: hydra-macvlan on a veth inside containerd's namespace + hydra-ipam;
 * - `broken`: hydra-bridge whose IPAM subnet is not a subnet;
 * - `slow`: the reference macvlan + host-local behind a wrapper whose ADD
 *   first sleeps `SLOW_ADD_S` seconds (longer than the runtime's budget).
 *
 * @module
 */

import { join } from "node:path";
import { type Containerd, startContainerd } from "../infra/containerd.ts";
import { referencePluginDir, repoRoot, requirePeers } from "../infra/peers.ts";
import { type Daemon, logTail, poll, spawnDaemon, stopProcessGroup } from "../infra/process.ts";
import { run, uniqueName, withTempDir } from "../helpers/netns.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import { hostLockPath } from "../../plugins/host_lock.ts";

/**
 * Fails the calling test unless it runs as root with containerd, its shim,
 * crictl, ctr and the reference plugins built (see tests/infra/peers.ts).
 */
export function requireNriPeers(): void {
  requirePeers("containerd", "containerd-shim-runc-v2", "crictl", "ctr");
  referencePluginDir();
}

/** How long the `slow` network's ADD sleeps before doing its work. */
export const SLOW_ADD_S = 3;

/** One address of `ip -j addr`. */
export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
}

/** One link of `ip -j addr`. */
export interface LinkAddrs {
  ifname: string;
  link_type?: string;
  address?: string;
  addr_info: AddrInfo[];
}

/** One route of `ip -j route`. */
export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev: string;
}

/** A running `hydra nri serve`. */
export interface HydraProcess {
  daemon: Daemon;
  /** GET on its health endpoint (a unix socket). */
  get(path: string): Promise<{ status: number; body: string }>;
  /** Its log as parsed JSON lines. */
  logLines(): Record<string, unknown>[];
  /** Waits until `/readyz` answers 200 (connected and synchronized). */
  ready(): Promise<void>;
  /** Waits until `n` Synchronize passes were logged as done. */
  passes(n: number): Promise<void>;
  /** SIGTERM; resolves with the exit status. */
  terminate(): Promise<number>;
  /** SIGKILL; resolves when gone. */
  kill(): Promise<void>;
}

/** The world handed to a test body. */
export interface NriWorld {
  ctd: Containerd;
  tmp: string;
  /** hydra's network confs. */
  confDir: string;
  /** hydra's records and pod state. */
  cacheDir: string;
  /** hydra-ipam's store. */
  ipamDir: string;
  /** "10.252.N." style prefixes of the networks' /24s. */
  blueNet: string;
  redNet: string;
  defaultNet: string;
  /** Destination of the route blue's IPAM adds. */
  blueRoute: string;
  /** hydra-bridge's bridge, in containerd's namespace. */
  bridge: string;
  /** Runs a pod sandbox (namespace nri-test); returns its id. */
  runp(
    name: string,
    annotations?: Record<string, string>,
    opts?: { hostNetwork?: boolean },
  ): Promise<string>;
  /** The sandbox's network namespace path. */
  netnsOf(id: string): Promise<string>;
  /** `ip -j addr` inside a namespace path. */
  addrs(netns: string): Promise<LinkAddrs[]>;
  /** `ip -j route` (IPv4 main table) inside a namespace path. */
  routes(netns: string): Promise<RouteInfo[]>;
  /** Folder of the `slow` network's wrapper plugin (pass it as --cni-bin-dir). */
  slowBinDir: string;
  /** Addresses the IPAM store holds for a network. */
  reserved(network: "blue" | "red" | "slow"): string[];
  /** Links enslaved to the blue bridge. */
  bridgePorts(): Promise<string[]>;
  /** Starts `bin/hydra nri serve` with the world's settings plus `extra` flags. */
  startHydra(extra?: string[]): Promise<HydraProcess>;
}

function octet(): number {
  return 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value, null, 2));
}

/** Settings of the world's containerd. */
export interface NriWorldOptions {
  /** NRI plugin_request_timeout; containerd's 2 s default unless given. */
  nriRequestTimeout?: string;
}

/** Runs `body` with a fresh world; everything is removed afterwards. */
export async function withNriWorld(
  body: (w: NriWorld) => Promise<void>,
  opts: NriWorldOptions = {},
): Promise<void> {
  requireNriPeers();
  await withTempDir(async (tmp) => {
    const defaultConfDir = join(tmp, "net.d");
    const confDir = join(tmp, "hydra.d");
    const cacheDir = join(tmp, "cache");
    const ipamDir = join(tmp, "ipam");
    await Deno.mkdir(defaultConfDir);
    await Deno.mkdir(confDir);
    const [d, b, r] = [octet(), octet(), octet()];
    const defaultNet = `10.251.${d}.`;
    const blueNet = `10.252.${b}.`;
    const redNet = `10.253.${r}.`;
    const blueRoute = `10.254.${b}.0/24`;
    const bridge = uniqueName("hnb");
    const brokenBridge = uniqueName("hnx");
    // One byte short of the limit: its veth peer is named "<parent>p".
    const parent = uniqueName("hnp").slice(0, 14);
    await writeJson(join(defaultConfDir, "10-default.conflist"), {
      cniVersion: "1.1.0",
      name: uniqueName("def"),
      plugins: [{
        type: "bridge",
        bridge: uniqueName("hdb"),
        isGateway: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: `${defaultNet}0/24` }]],
          dataDir: join(tmp, "default-ipam"),
        },
      }],
    });
    await writeJson(join(confDir, "blue.conflist"), {
      cniVersion: "1.1.0",
      name: "blue",
      plugins: [{
        type: "hydra-bridge",
        bridge,
        isGateway: true,
        ipam: {
          type: "hydra-ipam",
          subnet: `${blueNet}0/24`,
          routes: [{ dst: blueRoute }],
          dataDir: ipamDir,
        },
      }],
    });
    await writeJson(join(confDir, "red.conf"), {
      cniVersion: "1.1.0",
      name: "red",
      type: "hydra-macvlan",
      master: parent,
      mode: "bridge",
      ipam: { type: "hydra-ipam", subnet: `${redNet}0/24`, dataDir: ipamDir },
    });
    await writeJson(join(confDir, "broken.conf"), {
      cniVersion: "1.1.0",
      name: "broken",
      type: "hydra-bridge",
      bridge: brokenBridge,
      ipam: { type: "hydra-ipam", subnet: "not-a-subnet", dataDir: ipamDir },
    });

    const slowBinDir = join(tmp, "slowbin");
    await Deno.mkdir(slowBinDir);
    await Deno.writeTextFile(
      join(slowBinDir, "slow-macvlan"),
      `#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] && sleep ${SLOW_ADD_S}\n` +
        `exec ${join(referencePluginDir(), "macvlan")}\n`,
      { mode: 0o755 },
    );
    await writeJson(join(confDir, "slow.conf"), {
      cniVersion: "1.1.0",
      name: "slow",
      type: "slow-macvlan",
      master: parent,
      mode: "bridge",
      ipam: { type: "host-local", subnet: `${redNet}0/24`, dataDir: ipamDir },
    });

    const ctd = await startContainerd({
      cniConfDir: defaultConfDir,
      cniBinDirs: [referencePluginDir()],
      nriRequestTimeout: opts.nriRequestTimeout,
    });
    const started: HydraProcess[] = [];
    try {
      const ns = ctd.netnsName;
      await run(
        "ip",
        "-n",
        ns,
        "link",
        "add",
        parent,
        "type",
        "veth",
        "peer",
        "name",
        `${parent}p`,
      );
      await run("ip", "-n", ns, "link", "set", parent, "up");
      await run("ip", "-n", ns, "link", "set", `${parent}p`, "up");
      const inNetns = (path: string, ...args: string[]) =>
        run("nsenter", `--net=${path}`, "--", ...args);
      const world: NriWorld = {
        ctd,
        tmp,
        confDir,
        cacheDir,
        ipamDir,
        blueNet,
        redNet,
        defaultNet,
        blueRoute,
        bridge,
        slowBinDir,
        async runp(name, annotations = {}, opts = {}) {
          const config = join(tmp, `${name}.json`);
          const linux: Record<string, unknown> = { cgroup_parent: ctd.cgroupParent };
          // NamespaceMode NODE (2): the pod shares the node's network.
          if (opts.hostNetwork) {
            linux.security_context = { namespace_options: { network: 2 } };
          }
          await writeJson(config, {
            metadata: { name, namespace: "nri-test", uid: crypto.randomUUID() },
            annotations,
            log_directory: join(tmp, "logs", name),
            linux,
          });
          return (await ctd.crictl("runp", config)).trim();
        },
        async netnsOf(id) {
          const info = JSON.parse(await ctd.crictl("inspectp", "-o", "json", id));
          const spaces = info.info.runtimeSpec.linux.namespaces as {
            type: string;
            path?: string;
          }[];
          const path = spaces.find((s) => s.type === "network")?.path;
          if (!path) throw new Error(`sandbox ${id} has no network namespace`);
          return path;
        },
        async addrs(netns) {
          return JSON.parse(await inNetns(netns, "ip", "-j", "addr", "show"));
        },
        async routes(netns) {
          return JSON.parse(await inNetns(netns, "ip", "-j", "-4", "route", "show"));
        },
        reserved(network) {
          try {
            return [...Deno.readDirSync(join(ipamDir, network))]
              .map((e) => e.name)
              .filter((n) => /^[0-9.]+$|:/.test(n) && !n.startsWith("last_reserved_ip"));
          } catch (err) {
            if (err instanceof Deno.errors.NotFound) return [];
            throw err;
          }
        },
        async bridgePorts() {
          const text = await run("ip", "-n", ns, "-j", "link", "show", "master", bridge).catch(
            () => "[]",
          );
          return (JSON.parse(text.trim() || "[]") as { ifname: string }[]).map((l) => l.ifname);
        },
        async startHydra(extra = []) {
          const proc = startHydraProcess(ctd, {
            confDir,
            cacheDir,
            health: join(tmp, `health-${started.length}.sock`),
            logPath: join(tmp, `hydra-${started.length}.log`),
            extra,
          });
          started.push(proc);
          await proc.ready();
          return proc;
        },
      };
      await body(world);
    } finally {
      for (const p of started) await stopProcessGroup(p.daemon.pid).catch(() => {});
      await ctd.stop();
      // hydra-bridge leaves its per-bridge host lock files; these bridges are gone.
      for (const name of [bridge, brokenBridge]) {
        await Deno.remove(hostLockPath(`bridge-${name}`)).catch(() => {});
      }
    }
  });
}

function startHydraProcess(
  ctd: Containerd,
  o: { confDir: string; cacheDir: string; health: string; logPath: string; extra: string[] },
): HydraProcess {
  const daemon = spawnDaemon("hydra nri serve", "nsenter", {
    logPath: o.logPath,
    args: [
      `--net=/var/run/netns/${ctd.netnsName}`,
      "--",
      join(repoRoot, "bin", "hydra"),
      "nri",
      "serve",
      `--socket=${ctd.nriSocket}`,
      `--conf-dir=${o.confDir}`,
      `--cache-dir=${o.cacheDir}`,
      `--cni-bin-dir=${referencePluginDir()}`,
      `--health-addr=unix:${o.health}`,
      "--log-level=debug",
      ...o.extra,
    ],
  });
  const logLines = () => {
    let text = "";
    try {
      text = Deno.readTextFileSync(o.logPath);
    } catch {
      return [];
    }
    return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  };
  const get = (path: string) => getFromEndpoint({ transport: "unix", path: o.health }, path);
  const alive = () => {
    try {
      Deno.statSync(`/proc/${daemon.pid}`);
      return true;
    } catch {
      return false;
    }
  };
  const waitFor = async (what: string, check: () => Promise<boolean> | boolean) => {
    const ok = await poll(
      async () => {
        if (!alive()) throw new Error(`hydra exited: ${logTail(daemon, 40)}`);
        return await check();
      },
      60_000,
      100,
    );
    if (!ok) throw new Error(`timed out waiting for ${what}; hydra log: ${logTail(daemon, 40)}`);
  };
  return {
    daemon,
    get,
    logLines,
    ready: () =>
      waitFor("hydra to be ready", async () => {
        try {
          return (await get("/readyz")).status === 200;
        } catch {
          return false;
        }
      }),
    passes: (n) =>
      waitFor(
        `${n} synchronize passes`,
        () => logLines().filter((l) => l.msg === "synchronize pass done").length >= n,
      ),
    async terminate() {
      Deno.kill(daemon.pid, "SIGTERM");
      const status = await daemon.status!;
      return status.code;
    },
    async kill() {
      Deno.kill(daemon.pid, "SIGKILL");
      await daemon.status;
    },
  };
}

/** The extra links (not lo, not eth0) of a sandbox, by name. */
export function extraLinks(links: LinkAddrs[]): Map<string, LinkAddrs> {
  return new Map(
    links.filter((l) => l.ifname !== "lo" && l.ifname !== "eth0").map((l) => [l.ifname, l]),
  );
}

/** IPv4 addresses of a link, as "a.b.c.d/len". */
export function v4(link: LinkAddrs | undefined): string[] {
  return (link?.addr_info ?? []).filter((a) => a.family === "inet").map((a) =>
    `${a.local}/${a.prefixlen}`
  );
}
