/**
 * `hydra policy sync` beyond the matrix, against a real kube-apiserver and
 * real traffic between pod namespaces: the primary network and networks a
 * policy does not name stay untouched; established connections survive a
 * deny; a restart (SIGTERM or SIGKILL) leaves enforcement in place and the
 * first pass after it applies what changed meanwhile before the agent says
 * it is ready; bad policies fail closed or keep their last valid version,
 * with Events and metrics saying so; a command line it refuses.
 *
 * Needs root, libnftables and the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { runCommand } from "../infra/process.ts";
import { HYDRA } from "../meta_kube/harness.ts";
import { openTcp } from "./probe.ts";
import {
  expectMatrix,
  type PolicyWorld,
  startPolicyWorld,
  statusWritten,
  type WorldPod,
} from "./world.ts";

const all = () => true;
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

interface Event {
  reason: string;
  message: string;
  type: string;
  involvedObject: { kind: string; name: string };
}

async function events(w: PolicyWorld, ns: string, name: string): Promise<Event[]> {
  const list = await w.env.cp.api.must("GET", `/api/v1/namespaces/${w.ns[ns]}/events`) as {
    items: Event[];
  };
  return list.items.filter((e) => e.involvedObject.name === name);
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const toXa = (_f: WorldPod, to: WorldPod) => to.id !== "x/a";

Deno.test("hydra policy sync: command line", async () => {
  const help = await runCommand(HYDRA, ["policy", "sync", "--help"], { allowFailure: true });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--meta-cache-dir/);
  const bad = await runCommand(HYDRA, ["policy", "sync", "--max-parallel", "0"], {
    allowFailure: true,
  });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-parallel must be a positive number/);
  const rel = await runCommand(HYDRA, ["policy", "sync", "--state-dir", "rel"], {
    allowFailure: true,
  });
  assert.equal(rel.code, 2);
  const top = await runCommand(HYDRA, ["--help"], { allowFailure: true });
  assert.match(top.stdout, /policy/);
});

Deno.test("hydra policy sync: untouched networks, conntrack, restarts, bad input", async (t) => {
  const w = await startPolicyWorld(["x", "y"], ["a", "b"]);
  try {
    await statusWritten(w);
    let agent = await w.startAgent();
    await expectMatrix(w, all);

    await t.step("the primary network and networks not named stay open", async () => {
      await w.apply("x", "deny-all", { podSelector: {}, policyTypes: ["Ingress", "Egress"] });
      const blocked = (f: WorldPod, to: WorldPod) =>
        !f.id.startsWith("x/") && !to.id.startsWith("x/");
      await expectMatrix(w, blocked);
      await expectMatrix(w, all, { dev: "eth0", boundMs: 0 });
      await expectMatrix(w, all, { dev: "net2", boundMs: 0 });
      await expectMatrix(w, all, { dev: "eth0", proto: "udp", boundMs: 0 });
      const table = await w.pod("x/a").netns.exec("nft", "list", "table", "inet", "hydra_policy");
      assert.match(table, /iifname != "net1" accept/);
      assert.doesNotMatch(table, /eth0|net2/);
      assert.doesNotMatch(await w.pod("y/a").netns.exec("nft", "list", "tables"), /hydra_policy/);
      await w.remove("x", "deny-all");
      await expectMatrix(w, all);
    });

    await t.step("a connection established under a policy survives a change to deny", async () => {
      const fromY = (f: WorldPod, to: WorldPod) => to.id !== "x/a" || f.id.startsWith("y/");
      try {
        await w.apply("x", "conn", {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ namespaceSelector: sel({ ns: "y" }) }] }],
        });
        await expectMatrix(w, fromY);
        const conn = openTcp(w.pod("y/a").netns.path, w.pod("x/a").ip.net1, 80);
        try {
          assert.ok(conn.roundTrip());
          await w.apply("x", "conn", { podSelector: sel({ pod: "a" }), ingress: [] });
          await expectMatrix(w, toXa);
          assert.ok(conn.roundTrip(), "the established connection still flows");
        } finally {
          conn.close();
        }
      } finally {
        await w.remove("x", "conn");
      }
      await expectMatrix(w, all);
    });

    await t.step(
      "a restart keeps enforcement, and is ready only once changes are in force",
      async () => {
        await w.apply("x", "restart", { podSelector: sel({ pod: "a" }), ingress: [] });
        await expectMatrix(w, toXa);
        assert.equal(await agent.stop("SIGTERM"), 0);
        await expectMatrix(w, toXa, { boundMs: 0 });
        // Changed while no agent runs: the old rules stay, no window opens.
        await w.apply("x", "restart", {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ namespaceSelector: sel({ ns: "y" }) }] }],
        });
        await new Promise((r) => setTimeout(r, 500));
        await expectMatrix(w, toXa, { boundMs: 0 });
        agent = await w.startAgent();
        // Ready means the first pass is done: the new rules are in force already.
        await expectMatrix(w, (f, to) => to.id !== "x/a" || f.id.startsWith("y/"), { boundMs: 0 });
        await agent.stop("SIGKILL");
        await expectMatrix(w, (f, to) => to.id !== "x/a" || f.id.startsWith("y/"), { boundMs: 0 });
        await w.remove("x", "restart");
        await new Promise((r) => setTimeout(r, 300));
        await expectMatrix(w, (f, to) => to.id !== "x/a" || f.id.startsWith("y/"), { boundMs: 0 });
        agent = await w.startAgent();
        await expectMatrix(w, all, { boundMs: 0 });
      },
    );

    await t.step(
      "a new invalid policy fails closed for the pods it selects, with an Event",
      async () => {
        await w.apply("x", "bad-cidr", {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/40" } }] }],
        });
        await expectMatrix(w, toXa);
        await eventually(
          "an InvalidPolicy Event",
          async () =>
            (await events(w, "x", "bad-cidr")).some((e) =>
              e.reason === "InvalidPolicy" && e.type === "Warning" &&
              /10\.0\.0\.0\/40" is not a CIDR/.test(e.message) && /isolated/.test(e.message)
            ),
        );
        const m = await agent.metrics();
        assert.equal(metric(m, 'hydra_policy_policies{state="fail_closed"}'), 1);
        assert.ok(metric(m, "hydra_policy_rules") > 0);
        assert.ok(metric(m, 'hydra_policy_apply_seconds_count{result="ok"}') > 0);
        await w.remove("x", "bad-cidr");
        await expectMatrix(w, all);
      },
    );

    await t.step(
      "an invalid update keeps the last valid version, also across a restart",
      async () => {
        const good = {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ namespaceSelector: sel({ ns: "y" }) }] }],
        };
        const fromY = (f: WorldPod, to: WorldPod) => to.id !== "x/a" || f.id.startsWith("y/");
        await w.apply("x", "lastgood", good);
        await expectMatrix(w, fromY);
        await w.apply("x", "lastgood", { ...good, ingress: [{ ports: [{ port: 70000 }] }] });
        await eventually(
          "an InvalidPolicy Event naming the version in force",
          async () =>
            (await events(w, "x", "lastgood")).some((e) =>
              e.reason === "InvalidPolicy" && /70000 is not 1-65535/.test(e.message) &&
              /stays in force/.test(e.message)
            ),
        );
        await expectMatrix(w, fromY, { boundMs: 0 });
        assert.equal(metric(await agent.metrics(), 'hydra_policy_policies{state="last_good"}'), 1);
        await agent.stop();
        agent = await w.startAgent();
        await expectMatrix(w, fromY, { boundMs: 0 });
        await w.remove("x", "lastgood");
        await expectMatrix(w, all);
      },
    );

    await t.step(
      "huge selectors are refused and fail closed; unknown networks are told",
      async () => {
        const values = Array.from({ length: 5000 }, (_, i) => `v${i}`);
        await w.apply("x", "huge", {
          podSelector: { matchExpressions: [{ key: "pod", operator: "In", values }] },
        });
        await expectMatrix(w, (_f, to) => !to.id.startsWith("x/"));
        await eventually(
          "the refusal",
          async () =>
            (await events(w, "x", "huge")).some((e) =>
              /5000 values, more than 256/.test(e.message)
            ),
        );
        await w.remove("x", "huge");
        await w.apply("x", "unknown", { podSelector: {}, ingress: [] }, "no-such-net");
        await eventually(
          "an UnknownNetwork Event",
          async () =>
            (await events(w, "x", "unknown")).some((e) =>
              e.reason === "UnknownNetwork" && e.message.includes(`${w.ns.x}/no-such-net`)
            ),
        );
        await expectMatrix(w, all);
        await w.remove("x", "unknown");
      },
    );

    await t.step("UDP probes agree with the policy too", async () => {
      await w.apply("y", "udp", {
        podSelector: sel({ pod: "b" }),
        ingress: [{ ports: [{ protocol: "UDP", port: 81 }] }],
      });
      await expectMatrix(w, (_f, to) => to.id !== "y/b", { proto: "udp" });
      await expectMatrix(w, all, { proto: "udp", port: 81, boundMs: 0 });
      await w.remove("y", "udp");
      await expectMatrix(w, all, { proto: "udp" });
    });
  } finally {
    await w.close();
  }
});
