/**
 * Hot-plug benchmark: how long a running pod waits for a network its
 * annotation adds, and for one it drops. Prints one JSON document on stdout
 * (progress on stderr):
 *
 * ```json
 * {"attachMs": {"p50": 0, "p99": 0}, "detachMs": {"p50": 0, "p99": 0},
 *  "changes": 100, "setup": "meta", "plugins": "hydra",
 *  "nri": {"attachMs": {…}, "detachMs": {…}},
 *  "loadAverage": {"before": [1, 5, 15], "after": [1, 5, 15]}}
 * ```
 *
 * Usage: deno run -A bench/hotplug.ts [--changes 100] [--setup meta|nri|both]
 *                                     [--plugins hydra|reference]
 *
 * Method: the hot-plug tests' world (tests/hotplug/world.ts): a real
 * kube-apiserver, kubelet and containerd, hydra as the meta-CNI with
 * `hydra daemon --hotplug on` ("meta", the top-level figures) and hydra as
 * NRI plugin beside a default CNI ("nri"). The networks are hydra-bridge
 * with hydra-ipam, run in the agent's process (`--plugins reference`: the
 * reference bridge with host-local, exec'd per change, which adds their
 * process starts). One running pod on `blue` accepts hot plug; each change patches its networks annotation to
 * "blue,green" and back to "blue". `attachMs` runs from just before the
 * patch is sent to net2 being up in the pod's namespace with an IPv4
 * address (seen through netlink, polled every 2 ms); `detachMs` to net2
 * being gone. After each attach the address must be on green and reserved
 * by green's IPAM; after each detach the reservation must be gone; at the
 * end the pod's network-status must show blue alone beside eth0.
 *
 * No peer is measured: Multus's multus-dynamic-networks-controller (with
 * Multus thick) is not among the built peers. Needs root and the built
 * peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { findLink } from "../netlink/link.ts";
import { listAddrs } from "../netlink/addr.ts";
import { withHandle } from "../netlink/socket.ts";
import { NetlinkError } from "../netlink/errors.ts";
import {
  NETWORKS,
  type Plugins,
  type Setup,
  startHotplugWorld,
  statusOf,
} from "../tests/hotplug/world.ts";
import { percentile } from "./stats.ts";

/** p50 and p99 of samples, ms with one decimal. */
interface Quantiles {
  p50: number;
  p99: number;
}

function log(msg: string): void {
  console.error(`[hotplug bench] ${msg}`);
}

function quantiles(samples: number[]): Quantiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)) };
}

/** net2's IPv4 address when it is up with one, "" when it is there without, undefined when gone. */
function net2(netns: string): string | undefined {
  return withHandle({ netnsPath: netns }, (h) => {
    const link = findLink(h, "net2");
    if (!link) return undefined;
    if (!link.up) return "";
    try {
      const addr = listAddrs(h, { link: link.index, family: 4 })[0];
      return addr ? addr.cidr : "";
    } catch (err) {
      // Gone between the two requests.
      if (err instanceof NetlinkError && err.code === "ENODEV") return undefined;
      throw err;
    }
  });
}

/** Polls `probe` every 2 ms until `done`; the elapsed ms since `t0`. */
async function until<T>(
  what: string,
  probe: () => T,
  done: (v: T) => boolean,
  t0: number,
): Promise<{ ms: number; value: T }> {
  for (;;) {
    const value = probe();
    const now = performance.now();
    if (done(value)) return { ms: now - t0, value };
    if (now - t0 > 30_000) throw new Error(`${what}: not within 30 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The bench in one setup: `changes` attaches and detaches. */
async function measure(setup: Setup, changes: number, plugins: Plugins) {
  log(`${setup}: starting the world`);
  const w = await startHotplugWorld(setup, { plugins });
  try {
    const pod = await w.runPod("bench", "blue");
    const netns = await w.netnsOf(pod);
    const green = w.reservations("green");
    const attach: number[] = [];
    const detach: number[] = [];
    for (let i = 0; i < changes; i++) {
      let t0 = performance.now();
      await w.annotate("bench", { [NETWORKS]: "blue,green" });
      const up = await until("net2 up", () => net2(netns), (v) => !!v, t0);
      attach.push(up.ms);
      const ip = up.value!.split("/")[0];
      if (!w.reservations("green").some((r) => r.startsWith(`${ip} `))) {
        throw new Error(`change ${i}: ${ip} not reserved on green`);
      }
      t0 = performance.now();
      await w.annotate("bench", { [NETWORKS]: "blue" });
      detach.push((await until("net2 gone", () => net2(netns), (v) => v === undefined, t0)).ms);
      await until(
        "green released",
        () => w.reservations("green"),
        (r) => r.length === green.length,
        t0,
      );
      if ((i + 1) % 10 === 0) log(`${setup}: ${i + 1}/${changes} changes`);
    }
    await checkStatus(w, setup);
    return { attachMs: quantiles(attach), detachMs: quantiles(detach) };
  } finally {
    await w.close();
  }
}

/** The pod's network-status settles on eth0 and blue. */
async function checkStatus(w: Awaited<ReturnType<typeof startHotplugWorld>>, setup: Setup) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const names = statusOf(await w.getPod("bench")).map((e) => e.interface).sort();
    if (JSON.stringify(names) === JSON.stringify(["eth0", "net1"])) return;
    if (setup === "nri" && JSON.stringify(names) === JSON.stringify(["net1"])) return;
    if (Date.now() > deadline) throw new Error(`network-status shows ${names}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      changes: { type: "string", default: "100" },
      setup: { type: "string", default: "both" },
      plugins: { type: "string", default: "hydra" },
    },
  });
  const changes = Number(values.changes);
  const setup = values.setup!;
  const plugins = values.plugins as Plugins;
  if (
    !(changes >= 1) || !["meta", "nri", "both"].includes(setup) ||
    !["hydra", "reference"].includes(plugins)
  ) {
    console.error(
      "usage: bench/hotplug.ts [--changes N>=1] [--setup meta|nri|both] [--plugins hydra|reference]",
    );
    Deno.exit(2);
  }
  const before = Deno.loadavg();
  const doc: Record<string, unknown> = { changes, plugins };
  if (setup !== "nri") {
    Object.assign(doc, { setup: "meta", ...await measure("meta", changes, plugins) });
  }
  if (setup !== "meta") {
    const nri = await measure("nri", changes, plugins);
    if (setup === "nri") Object.assign(doc, { setup: "nri", ...nri });
    else doc.nri = nri;
  }
  doc.loadAverage = { before, after: Deno.loadavg() };
  console.log(JSON.stringify(doc, null, 2));
}
