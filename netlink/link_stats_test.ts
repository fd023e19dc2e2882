import assert from "node:assert/strict";
import { inVethNetns } from "../tests/helpers/netlink.ts";
import { isNotFound } from "./errors.ts";
import { linkStats } from "./link_stats.ts";
import { run } from "../tests/helpers/netns.ts";
import { probeAll } from "../cmd/icmp_probe.ts";

Deno.test(
  "link stats: the counters ip -s link prints",
  inVethNetns(async (h, ns) => {
    const before = linkStats(h, "va");
    const [ip] = await ns.ipJson<{ stats64: { tx: { packets: number; bytes: number } } }[]>(
      "-s",
      "link",
      "show",
      "dev",
      "va",
    );
    await run("ip", "-n", ns.name, "link", "set", "vb", "up");
    await run("ip", "-n", ns.name, "addr", "add", "10.99.0.1/24", "dev", "va");
    await run(
      "ip",
      "-n",
      ns.name,
      "neigh",
      "add",
      "10.99.0.2",
      "lladdr",
      "02:00:00:00:00:02",
      "dev",
      "va",
    );
    probeAll(ns.path, ["10.99.0.2"], 100); // vb holds no address: unanswered, but sent
    const after = linkStats(h, "va");
    assert.equal(before.txPackets, ip.stats64.tx.packets);
    assert.ok(after.txPackets > before.txPackets, "a sent datagram is counted");
    assert.throws(
      () => linkStats(h, "nope0"),
      (e) => isNotFound(e) || (e as Error).message.includes("nope0"),
    );
  }),
);
