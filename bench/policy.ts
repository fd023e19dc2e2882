/**
 * Policy benchmark: how long a MultiNetworkPolicy change takes to be in
 * force on every pod of a node, and what the rules add to a packet's round
 * trip. Prints one JSON document on stdout (progress on stderr):
 *
 * ```json
 * {"applyMs": {"p50": 0, "p99": 0}, "rttUsNoPolicy": 0, "rttUsPolicy": 0}
 * ```
 *
 * Usage: deno run -A bench/policy.ts [--pods 200] [--changes 20] [--rtt 2000]
 *
 * Method: the policy tests' world (tests/policy/world.ts): a real
 * kube-apiserver, `--pods` pods in one namespace attached by the meta-CNI
 * (hydra-bridge primary and secondary networks), and `hydra policy sync`.
 * One policy selects every pod; each change rewrites its allowed port, so
 * every pod's table changes. `applyMs` is, per pod and change, the time
 * from just before the API write to the end of that pod's table write (the
 * agent's log line, same clock), p50 and p99 over all of them. After each
 * change every pod's table is read back from its namespace and must hold
 * the new port, and a probe must pass on it and fail on the old one.
 *
 * `rttUs*`: median UDP round trip between two pods over the secondary
 * network, a new flow each time, with no policy and then with the server
 * isolated by 50 rules (ipBlocks) of which only the last one matches.
 *
 * Needs root, libnftables and the built peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runNft } from "../nft/run.ts";
import { probe, udpRoundTrips } from "../tests/policy/probe.ts";
import { type PolicyWorld, startPolicyWorld, statusWritten } from "../tests/policy/world.ts";
import { percentile } from "./stats.ts";

interface Options {
  pods: number;
  changes: number;
  rtt: number;
}

function log(msg: string): void {
  console.error(`[policy bench] ${msg}`);
}

/** Lines "pod table written" of the agent's log after byte `from`. */
async function writes(logPath: string, from: number): Promise<{ pod: string; at: number }[]> {
  const text = (await Deno.readTextFile(logPath)).slice(from);
  return text.split("\n").flatMap((l) => {
    if (!l.includes('"pod table written"')) return [];
    try {
      const j = JSON.parse(l) as { pod: string; at: number };
      return [{ pod: j.pod, at: j.at }];
    } catch {
      return [];
    }
  });
}

async function size(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

/** Every pod's table holds `port` (read back from each namespace). */
async function checkTables(w: PolicyWorld, port: number): Promise<void> {
  const bad: string[] = [];
  await Promise.all(w.pods.map(async (p) => {
    const text = await runNft("list table inet hydra_policy", { netns: p.netns.path });
    if (!text.includes(`dport ${port} accept`)) bad.push(p.id);
  }));
  if (bad.length) throw new Error(`tables without port ${port}: ${bad.slice(0, 5).join(", ")}`);
}

/** One change to port `port`; returns each pod's time to enforcement, ms. */
async function change(w: PolicyWorld, port: number, prev: number): Promise<number[]> {
  const from = await size(w.agentLog);
  const t0 = Date.now();
  await w.apply("x", "bench", { podSelector: {}, ingress: [{ ports: [{ port }] }] });
  const deadline = Date.now() + 30_000;
  let seen = new Map<string, number>();
  while (seen.size < w.pods.length) {
    if (Date.now() > deadline) throw new Error(`only ${seen.size} pods written in 30 s`);
    await new Promise((r) => setTimeout(r, 50));
    seen = new Map((await writes(w.agentLog, from)).map((x) => [x.pod, x.at]));
  }
  await checkTables(w, port);
  const [a, b] = w.pods;
  const [open, closed] = probe([
    { from: a.netns.path, to: b.ip.net1, proto: "tcp", port },
    { from: a.netns.path, to: b.ip.net1, proto: "tcp", port: prev },
  ], 500);
  if (!open || (port !== prev && closed)) throw new Error(`traffic disagrees with port ${port}`);
  return [...seen.values()].map((at) => at - t0);
}

function rtt(w: PolicyWorld, count: number): number {
  const [client, server] = w.pods;
  const samples = udpRoundTrips(client.netns.path, server.netns.path, server.ip.net1, 9, count)
    .sort((a, b) => a - b);
  return Math.round(percentile(samples, 50) * 10) / 10;
}

async function run(opts: Options): Promise<Record<string, unknown>> {
  const names = Array.from({ length: opts.pods }, (_, i) => `p${i}`);
  log(`attaching ${opts.pods} pods`);
  const w = await startPolicyWorld(["x"], names);
  try {
    await statusWritten(w);
    await w.startAgent(["--max-parallel", "64"]);
    const latencies: number[] = [];
    let prev = 81;
    for (let i = 0; i < opts.changes; i++) {
      const port = i % 2 === 0 ? 80 : 81;
      latencies.push(...await change(w, port, prev));
      prev = port;
      log(
        `change ${i + 1}/${opts.changes}: p99 so far ${
          percentile([...latencies].sort((a, b) => a - b), 99)
        } ms`,
      );
    }
    await w.remove("x", "bench");
    await new Promise((r) => setTimeout(r, 1_000));
    const [client, server] = w.pods;
    const rttUsNoPolicy = rtt(w, opts.rtt);
    const blocks = Array.from(
      { length: 49 },
      (_, i) => ({ ipBlock: { cidr: `192.0.2.${i + 1}/32` } }),
    );
    await w.apply("x", "rtt", {
      podSelector: { matchLabels: { pod: server.name } },
      ingress: [{ from: [...blocks, { ipBlock: { cidr: `${client.ip.net1}/32` } }] }],
    });
    await waitRules(server.netns.path, 50);
    const rttUsPolicy = rtt(w, opts.rtt);
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      applyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99) },
      rttUsNoPolicy,
      rttUsPolicy,
    };
  } finally {
    await w.close();
  }
}

/** Waits until the table in `netns` holds at least `n` accept rules of a policy. */
async function waitRules(netns: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await runNft("list table inet hydra_policy", { netns }).catch(() => "");
    if ((text.match(/ingress\[0\]/g) ?? []).length >= n) return;
    if (Date.now() > deadline) throw new Error(`the 50-rule table was not written`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string", default: "200" },
      changes: { type: "string", default: "20" },
      rtt: { type: "string", default: "2000" },
    },
  });
  const opts = {
    pods: Number(values.pods),
    changes: Number(values.changes),
    rtt: Number(values.rtt),
  };
  if (!(opts.pods >= 2 && opts.changes >= 1 && opts.rtt >= 1)) {
    console.error("usage: bench/policy.ts [--pods N>=2] [--changes N>=1] [--rtt N>=1]");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await run(opts), null, 2));
}
