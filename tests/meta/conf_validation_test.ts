/**
 * The exec path with the mistakes users make, as a runtime execs hydra:
 * an `ipam` block without a type fails ADD (no address-less interface with
 * exit 0), `"daemonExec": "yes"` fails ADD naming the key, Multus's
 * `"logLevel": "verbose"` works, and an unknown key (a typo) is logged as a
 * warning with the key it misspells while the ADD goes on.
 */

import assert from "node:assert/strict";
import { withWorld, type World } from "./harness.ts";
import { hydraBin } from "../plugins/helpers.ts";

function bridge(w: World, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.1.0",
    name: "vnet",
    type: "hydra-bridge",
    bridge: `vb${w.pods[0].name.slice(-8)}`,
    isGateway: true,
    ipam: { type: "hydra-ipam", subnet: `${w.subnet()}.0/24`, dataDir: w.dataDir },
    ...extra,
  };
}

function meta(w: World, delegate: unknown, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.1.0",
    name: "hydra",
    type: "hydra",
    cacheDir: w.cacheDir,
    logFile: `${w.dir}/hydra.log`,
    delegates: [delegate],
    ...extra,
  };
}

async function podLinks(w: World): Promise<string[]> {
  const list = await w.pods[0].ipJson<{ ifname: string }[]>("link", "show");
  return list.map((l) => l.ifname).filter((n) => n !== "lo");
}

Deno.test("an ipam block without a type fails ADD with code 7, and leaves no interface", async () => {
  await withWorld(1, async (w) => {
    const conf = bridge(w, { ipam: { subnet: `${w.subnet()}.0/24` } });
    const env = { CNI_PATH: hydraBin };
    const alone = await w.cni("ADD", conf, { program: `${hydraBin}/hydra-bridge`, env });
    assert.equal(alone.code, 1, alone.stdout);
    assert.equal(alone.json?.code, 7);
    assert.match(String(alone.json?.msg), /"ipam" has no "type"/);
    const viaMeta = await w.cni("ADD", meta(w, conf), { env });
    assert.equal(viaMeta.json?.code, 7, viaMeta.stdout);
    assert.deepEqual(await podLinks(w), []);
    // DEL of what ADD refused succeeds.
    assert.equal((await w.cni("DEL", meta(w, conf), { env })).code, 0);
  });
});

Deno.test('"daemonExec": "yes" fails ADD with code 6 naming the key, nothing attached', async () => {
  await withWorld(1, async (w) => {
    const env = { CNI_PATH: hydraBin };
    const out = await w.cni("ADD", meta(w, bridge(w), { daemonExec: "yes" }), { env });
    assert.equal(out.json?.code, 6, out.stdout);
    assert.match(String(out.json?.msg), /"daemonExec" must be a boolean, got string/);
    assert.deepEqual(await podLinks(w), []);
  });
});

Deno.test('Multus\'s "logLevel": "verbose" attaches (read as debug), and a typo is logged, not fatal', async () => {
  await withWorld(1, async (w) => {
    const env = { CNI_PATH: hydraBin };
    const conf = meta(w, bridge(w, { isGatway: true }), { logLevel: "verbose" });
    const add = await w.cni("ADD", conf, { env });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await podLinks(w), ["eth0"]);
    const log = (await Deno.readTextFile(`${w.dir}/hydra.log`)).split("\n").filter(Boolean)
      .map((l) => JSON.parse(l));
    const warning = log.find((l) => l.level === "warn" && /isGatway/.test(l.msg));
    assert.ok(warning, "no warning about the typo");
    assert.match(warning.msg, /did you mean "isGateway"\?/);
    assert.equal(warning.key, "delegates[0].isGatway");
    assert.equal((await w.cni("DEL", conf, { env })).code, 0);
    assert.deepEqual(await podLinks(w), []);
    const after = await Deno.readTextFile(`${w.dir}/hydra.log`);
    assert.match(after, /"level":"debug","msg":"delegate deleted"/, "verbose logs at debug");
  });
});

Deno.test("an exec'd built-in warns about an unknown key on stderr and goes on", async () => {
  await withWorld(1, async (w) => {
    const env = { CNI_PATH: hydraBin };
    const conf = bridge(w, { hairpinMod: true });
    const add = await w.cni("ADD", conf, { program: `${hydraBin}/hydra-bridge`, env });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const line = add.stderr.split("\n").find((l) => l.includes("hairpinMod"));
    assert.ok(line, add.stderr);
    assert.equal(JSON.parse(line).level, "warn");
    assert.match(line, /did you mean \\"hairpinMode\\"/);
    const del = await w.cni("DEL", conf, { program: `${hydraBin}/hydra-bridge`, env });
    assert.equal(del.code, 0, del.stdout + del.stderr);
  });
});
