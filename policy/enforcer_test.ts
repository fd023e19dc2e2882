import assert from "node:assert/strict";
import { withNetns } from "../tests/helpers/netns.ts";
import { parseIpAddr } from "../ipaddr/ip.ts";
import type { PodRules } from "./compile.ts";
import { createEnforcer, libnftablesDriver, type NftDriver } from "./enforcer.ts";

const RULES: PodRules = {
  interfaces: [{
    ifName: "net1",
    network: "n/blue",
    ingress: [{
      comment: "n/p ingress[0]",
      addrs: { family: 4, include: [{ ip: parseIpAddr("10.9.0.1")!, prefix: 32 }], exclude: [] },
    }],
  }],
};

/** libnftables, counting writes, refusing full tables while `refuse` is set. */
function countingDriver() {
  const d = {
    writes: 0,
    refuse: false,
    refuseAll: false,
    async apply(netns: string, text: string) {
      d.writes++;
      if (d.refuseAll || (d.refuse && text.includes("10.9.0.1"))) {
        throw new Error("refused by the test");
      }
      await libnftablesDriver.apply(netns, text);
    },
    hasTable: (netns: string) => libnftablesDriver.hasTable(netns),
  };
  return d satisfies NftDriver;
}

Deno.test("enforcer: writes only what changed, removes tables no longer wanted", async () => {
  await withNetns(2, async (a, b) => {
    const driver = countingDriver();
    const e = createEnforcer({ driver });
    let out = await e.sync([
      { netns: a.path, pod: "n/a", rules: RULES },
      { netns: b.path, pod: "n/b", rules: { interfaces: [] } },
    ]);
    assert.deepEqual(out.map((o) => o.state), ["applied"]);
    assert.equal(driver.writes, 1, "no table in b: nothing written there");
    assert.deepEqual(e.totals(), { rules: 6, enforced: 1, failClosed: 0 });
    out = await e.sync([{ netns: a.path, pod: "n/a", rules: RULES }]);
    assert.deepEqual(out, []);
    assert.equal(driver.writes, 1);
    out = await e.sync([{ netns: a.path, pod: "n/a", rules: { interfaces: [] } }]);
    assert.deepEqual(out.map((o) => o.state), ["removed"]);
    assert.doesNotMatch(await a.exec("nft", "list", "tables"), /hydra_policy/);
    // A fresh enforcer (a restart) removes a table left behind.
    await createEnforcer().sync([{ netns: b.path, pod: "n/b", rules: RULES }]);
    const fresh = createEnforcer();
    out = await fresh.sync([{ netns: b.path, pod: "n/b", rules: { interfaces: [] } }]);
    assert.deepEqual(out.map((o) => o.state), ["removed"]);
    assert.doesNotMatch(await b.exec("nft", "list", "tables"), /hydra_policy/);
  });
});

Deno.test("enforcer: a table that cannot be written fails closed, and is retried", async () => {
  await withNetns(1, async (ns) => {
    const driver = countingDriver();
    const e = createEnforcer({ driver });
    driver.refuse = true;
    let [o] = await e.sync([{ netns: ns.path, pod: "n/a", rules: RULES }]);
    assert.equal(o.state, "fail_closed");
    const closed = await ns.exec("nft", "list", "table", "inet", "hydra_policy");
    assert.match(closed, /iifname != "net1" accept/);
    assert.doesNotMatch(closed, /10\.9\.0\.1/);
    assert.deepEqual(e.totals(), { rules: 5, enforced: 0, failClosed: 1 });
    driver.refuse = false;
    [o] = await e.sync([{ netns: ns.path, pod: "n/a", rules: RULES }]);
    assert.equal(o.state, "applied", "the same rules are tried again");
    driver.refuseAll = true;
    [o] = await e.sync([{
      netns: ns.path,
      pod: "n/a",
      rules: { interfaces: [{ ifName: "net1", network: "n/blue", egress: [] }] },
    }]);
    assert.equal(o.state, "failed");
    assert.match(
      await ns.exec("nft", "list", "table", "inet", "hydra_policy"),
      /10\.9\.0\.1/,
      "the last rules stay",
    );
  });
});

Deno.test("enforcer: an interface name nftables cannot quote fails that pod alone", async () => {
  await withNetns(1, async (ns) => {
    const e = createEnforcer();
    const bad: PodRules = { interfaces: [{ ...RULES.interfaces[0], ifName: 'x" accept' }] };
    const out = await e.sync([
      { netns: "/var/run/netns/hydra-none-such", pod: "n/bad", rules: bad },
      { netns: ns.path, pod: "n/a", rules: RULES },
    ]);
    assert.deepEqual(out.map((o) => o.state), ["failed", "applied"]);
  });
});

Deno.test("enforcer: a namespace gone is no error; the node's own namespace is refused", async () => {
  const e = createEnforcer();
  const [gone] = await e.sync([{
    netns: "/var/run/netns/hydra-none-such",
    pod: "n/a",
    rules: RULES,
  }]);
  assert.equal(gone.state, "gone");
  const [own] = await e.sync([{ netns: "/proc/self/ns/net", pod: "n/a", rules: RULES }]);
  assert.equal(own.state, "failed");
  assert.match((own as { error: string }).error, /node's own network namespace/);
});
