import assert from "node:assert/strict";
import { withNetns } from "../tests/helpers/netns.ts";
import { parseIpAddr } from "../ipaddr/ip.ts";
import { runNft } from "../nft/run.ts";
import type { PodRules } from "./compile.ts";
import { renderFailClosed, renderTable } from "./render.ts";

const v4 = (t: string) => ({ ip: parseIpAddr(t)!, prefix: 32 });

const RULES: PodRules = {
  interfaces: [{
    ifName: "net1",
    network: "n/blue",
    ingress: [
      {
        comment: 'n/p "quoted" ingress[0]',
        addrs: { family: 4, include: [v4("10.0.0.2"), v4("10.0.0.1")], exclude: [] },
        l4: { protocol: "tcp", ports: [[80, 80], [8000, 8080]] },
      },
      {
        comment: "n/p ingress[1]",
        addrs: {
          family: 6,
          include: [{ ip: parseIpAddr("fd00::")!, prefix: 64 }],
          exclude: [{ ip: parseIpAddr("fd00::")!, prefix: 80 }],
        },
      },
      { comment: "n/p ingress[2]", l4: { protocol: "sctp" } },
    ],
    egress: [],
  }, { ifName: "net2", network: "n/green", egress: [{ comment: "n/q egress[0]" }] }],
};

Deno.test("render: nftables accepts the table, the fail-closed table and the removal", async () => {
  await withNetns(1, async (ns) => {
    const table = renderTable(RULES);
    await runNft(table.text, { netns: ns.path });
    const listed = await ns.exec("nft", "list", "table", "inet", "hydra_policy");
    assert.match(listed, /iifname != "net1" accept/);
    assert.match(
      listed,
      /ip saddr \{ 10\.0\.0\.1, 10\.0\.0\.2 \} tcp dport \{ 80, 8000-8080 \} accept/,
    );
    assert.match(listed, /ip6 saddr fd00::\/64 ip6 saddr != fd00::\/80 accept/);
    assert.match(listed, /comment "n\/p \?quoted\? ingress\[0\]"/);
    assert.match(listed, /oifname != \{ "net1", "net2" \} accept/);
    assert.match(listed, /oifname "net2" accept/);
    assert.equal(
      listed.split("\n").filter((l) => /^\s+(iif|oif|ct|icmpv6|counter|meta|ip)/.test(l)).length,
      table.rules,
    );
    // Rewritten in place: the same text again, and a smaller one.
    await runNft(table.text, { netns: ns.path });
    await runNft(renderFailClosed(RULES).text, { netns: ns.path });
    const closed = await ns.exec("nft", "list", "table", "inet", "hydra_policy");
    assert.doesNotMatch(closed, /10\.0\.0\.1/);
    assert.match(closed, /counter packets \d+ bytes \d+ drop/);
    await runNft(renderTable({ interfaces: [] }).text, { netns: ns.path });
    assert.doesNotMatch(await ns.exec("nft", "list", "tables"), /hydra_policy/);
  });
});
