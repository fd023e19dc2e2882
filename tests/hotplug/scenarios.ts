/**
 * What hot plug must do, in either setup (world.ts): a running pod that
 * accepts hot plug gets a network added to its annotation and can reach a
 * peer over it, loses it again with its address released, keeps its
 * networks on bad input (with a Warning saying why), converges after the
 * agent is killed in the middle of a change, and has everything released
 * when it is deleted; a pod that does not accept hot plug is left alone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { poll } from "../infra/process.ts";
import { listRecords } from "../../engine/record.ts";
import { resultAnnotationKey } from "../../kube/status.ts";
import type { Pod } from "../../kube/objects.ts";
import {
  type HotplugWorld,
  type LinkAddrs,
  NETWORKS,
  type PodEvent,
  statusOf,
  v4,
} from "./world.ts";

/** Waits for `check`, failing with `what` and `detail()` when it does not come. */
async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  detail: () => Promise<string> | string = () => "",
  timeoutMs = 30_000,
): Promise<number> {
  const t0 = performance.now();
  if (!await poll(check, timeoutMs, 50)) throw new Error(`${what}: ${await detail()}`);
  return performance.now() - t0;
}

/** The extra links of a pod by name (not lo). */
async function linksOf(w: HotplugWorld, netns: string): Promise<Map<string, LinkAddrs>> {
  return new Map((await w.links(netns)).filter((l) => l.ifname !== "lo").map((l) => [l.ifname, l]));
}

async function linkNames(w: HotplugWorld, netns: string): Promise<string[]> {
  return [...(await linksOf(w, netns)).keys()].sort();
}

/** One pod under test: its object, sandbox namespace and a way to look again. */
interface Subject {
  name: string;
  pod: Pod;
  netns: string;
}

async function subject(w: HotplugWorld, name: string, networks: string, optIn = true) {
  const pod = await w.runPod(name, networks, optIn);
  return { name, pod, netns: await w.netnsOf(pod) } as Subject;
}

/** Waits until `ifName` is up in the pod with an IPv4 address; returns the address. */
async function interfaceUp(w: HotplugWorld, s: Subject, ifName: string): Promise<string> {
  let addr = "";
  await until(`${s.name}: ${ifName} up with an address`, async () => {
    const link = (await linksOf(w, s.netns)).get(ifName);
    addr = v4(link)[0] ?? "";
    return addr !== "" && link?.operstate !== "DOWN";
  }, async () => (await linkNames(w, s.netns)).join(" "));
  return addr;
}

async function interfaceGone(w: HotplugWorld, s: Subject, ifName: string): Promise<void> {
  await until(
    `${s.name}: ${ifName} gone`,
    async () => !(await linksOf(w, s.netns)).has(ifName),
    async () => (await linkNames(w, s.netns)).join(" "),
  );
}

async function eventWith(w: HotplugWorld, s: Subject, want: Partial<PodEvent> & { text: string }) {
  let seen: PodEvent[] = [];
  await until(`${s.name}: event ${want.reason} "${want.text}"`, async () => {
    seen = await w.events(s.name);
    return seen.some((e) =>
      (!want.type || e.type === want.type) && (!want.reason || e.reason === want.reason) &&
      e.message.includes(want.text)
    );
  }, () => JSON.stringify(seen));
}

/** Waits until the pod's network-status shows `ifName` on `network` (or shows it no more). */
async function statusShows(
  w: HotplugWorld,
  s: Subject,
  network: string,
  ifName: string,
  shown = true,
): Promise<Pod> {
  let pod = s.pod;
  await until(
    `${s.name}: network-status ${shown ? "shows" : "drops"} ${network}@${ifName}`,
    async () => {
      pod = await w.getPod(s.name);
      const has = statusOf(pod).some((e) => e.name === network && e.interface === ifName);
      return has === shown;
    },
    () => JSON.stringify(statusOf(pod)),
  );
  return pod;
}

/** The reservations of a network held by sandbox `id`. */
function heldBy(w: HotplugWorld, network: "blue" | "green" | "slow", id: string): string[] {
  return w.reservations(network).filter((r) => r.includes(id));
}

function sandboxIdOf(w: HotplugWorld, network: "blue" | "green" | "slow", ip: string) {
  const line = w.reservations(network).find((r) => r.startsWith(`${ip.split("/")[0]} `));
  assert.ok(line, `${ip} is reserved on ${network}: ${w.reservations(network)}`);
  return line.split(" ")[1];
}

/** net2 on green comes when the annotation adds it, reaches the peer, and goes again. */
export async function attachAndDetach(w: HotplugWorld): Promise<void> {
  const peer = await subject(w, "peer", "green");
  const peerGreen = (await interfaceUp(w, peer, "net1")).split("/")[0];
  const a = await subject(w, "alpha", "blue");
  await interfaceUp(w, a, "net1");
  assert.deepEqual(await linkNames(w, a.netns), ["eth0", "net1"]);

  await w.annotate(a.name, { [NETWORKS]: "blue,green" });
  const t0 = performance.now();
  const addr = await interfaceUp(w, a, "net2");
  console.log(
    `[${w.setup}] net2 up with ${addr} ${Math.round(performance.now() - t0)} ms after the patch`,
  );
  assert.ok(await w.ping(a.netns, peerGreen), `alpha reaches the peer ${peerGreen} over net2`);
  const green = `${w.ns}/green`;
  const pod = await statusShows(w, a, green, "net2");
  const entry = statusOf(pod).find((e) => e.name === green)!;
  assert.deepEqual(entry.ips, [addr.split("/")[0]]);
  const link = (await linksOf(w, a.netns)).get("net2")!;
  assert.equal(entry.mac, link.address);
  const result = JSON.parse(pod.metadata.annotations![resultAnnotationKey(green)]);
  assert.deepEqual(result.ips.map((i: { address: string }) => i.address), [addr]);
  await eventWith(w, a, {
    type: "Normal",
    reason: "AddedInterface",
    text: `Add net2 [${addr}] from ${green}`,
  });
  const id = sandboxIdOf(w, "green", addr);
  assert.equal(heldBy(w, "green", id).length, 1);

  await w.annotate(a.name, { [NETWORKS]: "blue" });
  await interfaceGone(w, a, "net2");
  await until(
    "alpha's green address released",
    () => heldBy(w, "green", id).length === 0,
    () => w.reservations("green").join(", "),
  );
  const after = await statusShows(w, a, green, "net2", false);
  assert.equal(after.metadata.annotations?.[resultAnnotationKey(green)], undefined);
  await eventWith(w, a, { type: "Normal", reason: "RemovedInterface", text: `net2 from ${green}` });
  assert.deepEqual(await linkNames(w, a.netns), ["eth0", "net1"], "eth0 and net1 stay");
  assert.ok(statusOf(after).some((e) => e.name === `${w.ns}/blue` && e.interface === "net1"));
}

/** A pod without the opt-in annotation keeps its networks whatever its annotation says. */
export async function optOutLeftAlone(w: HotplugWorld): Promise<void> {
  const plain = await subject(w, "plain", "blue", false);
  await interfaceUp(w, plain, "net1");
  const a: Subject = { name: "alpha", pod: await w.getPod("alpha"), netns: "" };
  a.netns = await w.netnsOf(a.pod);
  await w.annotate(plain.name, { [NETWORKS]: "blue,green" });
  // A later change of a pod that accepts hot plug is done: the earlier one was seen.
  await w.annotate(a.name, { [NETWORKS]: "blue,green" });
  await interfaceUp(w, a, "net2");
  assert.deepEqual(await linkNames(w, plain.netns), ["eth0", "net1"], "plain is left alone");
  assert.ok(
    !(await w.events(plain.name)).some((e) =>
      /Interface|Attach|Selection/.test(e.reason) && e.message.includes("net2")
    ),
  );
  await w.annotate(a.name, { [NETWORKS]: "blue" });
  await interfaceGone(w, a, "net2");
  await w.deletePod(plain.name);
}

/** Bad input changes nothing and says why; a missing NAD is attached once it exists. */
export async function badInput(w: HotplugWorld): Promise<void> {
  const a: Subject = { name: "alpha", pod: await w.getPod("alpha"), netns: "" };
  a.netns = await w.netnsOf(a.pod);
  const before = await linkNames(w, a.netns);

  await w.annotate(a.name, { [NETWORKS]: '[{"name": "blue"}, {"name": ' });
  await eventWith(w, a, {
    type: "Warning",
    reason: "InvalidNetworkSelection",
    text: "not a valid JSON",
  });
  assert.deepEqual(await linkNames(w, a.netns), before);

  await w.annotate(a.name, { [NETWORKS]: "blue,green@net1" });
  await eventWith(w, a, { type: "Warning", reason: "InterfaceNameTaken", text: `net1` });
  assert.deepEqual(await linkNames(w, a.netns), before);

  await w.annotate(a.name, { [NETWORKS]: "blue,late" });
  await eventWith(w, a, { type: "Warning", reason: "AttachFailed", text: "late" });
  assert.deepEqual(await linkNames(w, a.netns), before, "blue stays, nothing else comes");
  // The failed selection is retried: once its NAD exists it is attached.
  const green = await w.cp.api.must(
    "GET",
    `/apis/k8s.cni.cncf.io/v1/namespaces/${w.ns}/network-attachment-definitions/green`,
  ) as { spec: { config: string } };
  await w.cp.api.must(
    "POST",
    `/apis/k8s.cni.cncf.io/v1/namespaces/${w.ns}/network-attachment-definitions`,
    {
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: { name: "late", namespace: w.ns },
      spec: green.spec,
    },
  );
  await interfaceUp(w, a, "net2");

  // An empty selection detaches every selected network; the default network stays.
  await w.annotate(a.name, { [NETWORKS]: "" });
  await interfaceGone(w, a, "net1");
  await interfaceGone(w, a, "net2");
  assert.deepEqual(await linkNames(w, a.netns), ["eth0"]);
  await w.annotate(a.name, { [NETWORKS]: "blue" });
  await interfaceUp(w, a, "net1");
}

/** The agent killed in the middle of a plug, then started again: one interface, one address. */
export async function restartMidChange(w: HotplugWorld): Promise<void> {
  const a: Subject = { name: "alpha", pod: await w.getPod("alpha"), netns: "" };
  a.netns = await w.netnsOf(a.pod);
  await Deno.remove(w.slowMarker).catch(() => {});
  await w.annotate(a.name, { [NETWORKS]: "blue,slow" });
  await until("the slow ADD to start", () => {
    try {
      Deno.statSync(w.slowMarker);
      return true;
    } catch {
      return false;
    }
  });
  await w.agent.kill();
  const cut = (await listRecords(w.cacheDir)).some((r) =>
    r.pod?.uid === a.pod.metadata.uid && r.delegates.some((d) => d.pending)
  );
  assert.ok(cut, "the kill left a plug half-done");
  await w.startAgent();
  const slow = `${w.ns}/slow`;
  // The plug the kill cut short is undone and made once: one address, on net2, recorded.
  await until("slow attached once", async () => {
    const reserved = w.reservations("slow");
    const addr = v4((await linksOf(w, a.netns)).get("net2"))[0];
    const records = await listRecords(w.cacheDir);
    const pending = records.some((r) => r.delegates.some((d) => d.pending));
    return reserved.length === 1 && addr !== undefined &&
      reserved[0].startsWith(`${addr.split("/")[0]} `) && !pending;
  }, async () => `${w.reservations("slow")} ${await linkNames(w, a.netns)}`);
  await statusShows(w, a, slow, "net2");
  assert.deepEqual(await linkNames(w, a.netns), ["eth0", "net1", "net2"]);
  await w.annotate(a.name, { [NETWORKS]: "blue" });
  await interfaceGone(w, a, "net2");
  await until(
    "slow's address released",
    () => w.reservations("slow").length === 0,
    () => w.reservations("slow").join(", "),
  );
}

/** Deleting the pod releases its hot-plugged networks with the others. */
export async function deleteReleases(w: HotplugWorld): Promise<void> {
  const a: Subject = { name: "alpha", pod: await w.getPod("alpha"), netns: "" };
  a.netns = await w.netnsOf(a.pod);
  await w.annotate(a.name, { [NETWORKS]: "blue,green" });
  const addr = await interfaceUp(w, a, "net2");
  const id = sandboxIdOf(w, "green", addr);
  await w.deletePod(a.name);
  await until(
    "alpha's addresses released",
    () => heldBy(w, "green", id).length === 0 && heldBy(w, "blue", id).length === 0,
    () => `${w.reservations("blue")} ${w.reservations("green")}`,
  );
  await until(
    "alpha's records removed",
    async () => !(await listRecords(w.cacheDir)).some((r) => r.containerId === id),
  );
  await w.deletePod("peer");
}
