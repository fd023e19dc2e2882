import assert from "node:assert/strict";
import { withNetns } from "../tests/helpers/netns.ts";
import { currentNetnsId } from "../netlink/netns.ts";
import { NftError, runNft, runNftSync } from "./run.ts";

interface ListedTable {
  nftables: { table?: { name: string }; rule?: { chain: string; comment?: string } }[];
}

function tables(json: string): string[] {
  return (JSON.parse(json) as ListedTable).nftables.flatMap((o) => o.table ? [o.table.name] : []);
}

const TABLE = `add table inet hydra_t
add chain inet hydra_t input { type filter hook input priority filter; policy accept; }
add rule inet hydra_t input iifname "net1" tcp dport 80 accept comment "first"`;

Deno.test("runNft: applies inside the namespace only, and lists it back as JSON", async () => {
  await withNetns(2, async (a, b) => {
    const home = currentNetnsId();
    await runNft(TABLE, { netns: a.path });
    assert.equal(currentNetnsId(), home, "the thread came back");
    assert.deepEqual(tables(await runNft("list tables", { netns: a.path, json: true })), [
      "hydra_t",
    ]);
    assert.deepEqual(tables(await runNft("list tables", { netns: b.path, json: true })), []);
    const text = await a.exec("nft", "list", "table", "inet", "hydra_t");
    assert.match(text, /iifname "net1" tcp dport 80 accept comment "first"/);
  });
});

Deno.test("runNft: a refused buffer applies nothing of it and says why", async () => {
  await withNetns(1, async (ns) => {
    await assert.rejects(
      runNft(`${TABLE}\nadd rule inet hydra_t input ip saddr 10.0.0.0/40 accept`, {
        netns: ns.path,
      }),
      (err: unknown) => {
        assert.ok(err instanceof NftError);
        assert.match(err.message, /Prefix length 40 is invalid/);
        assert.match(err.detail, /\^/);
        return true;
      },
    );
    assert.deepEqual(tables(await runNft("list tables", { netns: ns.path, json: true })), []);
    await assert.rejects(runNft("this is not nft", { netns: ns.path }), NftError);
  });
});

Deno.test("runNft: dry run checks without applying; sync run applies", async () => {
  await withNetns(1, async (ns) => {
    await runNft(TABLE, { netns: ns.path, dryRun: true });
    assert.deepEqual(tables(runNftSync("list tables", { netns: ns.path, json: true })), []);
    runNftSync(TABLE, { netns: ns.path });
    assert.deepEqual(tables(runNftSync("list tables", { netns: ns.path, json: true })), [
      "hydra_t",
    ]);
  });
});

Deno.test("runNft: many namespaces written at once each get their own rules", async () => {
  await withNetns(12, async (...all) => {
    await Promise.all(
      all.map((ns, i) =>
        runNft(
          `${TABLE}\nflush chain inet hydra_t input\nadd rule inet hydra_t input tcp dport ${
            1000 + i
          } accept`,
          { netns: ns.path },
        )
      ),
    );
    for (const [i, ns] of all.entries()) {
      const text = await ns.exec("nft", "list", "table", "inet", "hydra_t");
      assert.match(text, new RegExp(`tcp dport ${1000 + i} accept`));
      assert.doesNotMatch(text, /"net1"/, "flushed in the same transaction");
    }
  });
});

Deno.test("runNft: a path that is not a namespace is an error, not a write elsewhere", async () => {
  const file = await Deno.makeTempFile();
  try {
    await assert.rejects(runNft("add table inet hydra_x", { netns: file }));
    assert.ok(!tables(await runNft("list tables", { json: true })).includes("hydra_x"));
  } finally {
    await Deno.remove(file);
  }
});
