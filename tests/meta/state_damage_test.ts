/**
 * The meta-CNI (conf-file mode, exec'd as a runtime does, built-ins in
 * process) when its state is damaged or the runtime misbehaves: a record
 * truncated, zeroed or of another version; a record holding a network this
 * version rejects; an ADD repeated without a DEL; a delegate whose DEL fails
 * while the record is gone; temp files of killed writes; a delegate timeout
 * too long for a timer. Every case ends with the pod namespace empty and
 * every address released, or the failure reported.
 *
 * Needs root.
 */

import assert from "node:assert/strict";
import { run } from "../helpers/netns.ts";
import {
  ipamReservations,
  linkName,
  links,
  listFiles,
  REFERENCE_CNI,
  withWorld,
  type World,
} from "./harness.ts";

async function podLinks(w: World, pod = w.pods[0]): Promise<string[]> {
  return [...(await links(pod)).keys()].filter((n) => n !== "lo").sort();
}

/** Two networks: hydra-bridge and a second hydra-bridge, each with hydra-ipam. */
function twoNetworks(w: World, extra: Record<string, unknown> = {}) {
  const net = (name: string) => ({
    cniVersion: "1.0.0",
    name,
    type: "hydra-bridge",
    bridge: linkName("hdb"),
    ipam: { type: "hydra-ipam", subnet: `${w.subnet()}.0/24`, dataDir: w.dataDir },
  });
  return {
    cniVersion: "1.0.0",
    name: "pods",
    type: "hydra",
    cacheDir: w.cacheDir,
    delegates: [net("dmg-a"), net("dmg-b")],
    ...extra,
  };
}

function recordFile(w: World, pod = w.pods[0]): string {
  return `${w.cacheDir}/attachments/ctr-${pod.name}-eth0`;
}

async function attached(w: World, conf: unknown): Promise<void> {
  const add = await w.cni("ADD", conf);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(await podLinks(w), ["eth0", "net1"]);
  assert.equal((await ipamReservations(w.dataDir)).length, 2);
}

const DAMAGE: Record<string, (text: string) => string> = {
  truncated: (t) => t.slice(0, Math.floor(t.length / 2)),
  zeroed: () => "",
  "of another version": (t) => t.replace('"hydraAttachmentsV1"', '"hydraAttachmentsV9"'),
};

Deno.test("a damaged record: DEL removes every link and address from what survives", async (t) => {
  for (const [how, damage] of Object.entries(DAMAGE)) {
    await t.step(how, async () => {
      await withWorld(1, async (w) => {
        const conf = twoNetworks(w);
        await attached(w, conf);
        await Deno.writeTextFile(recordFile(w), damage(await Deno.readTextFile(recordFile(w))));
        const del = await w.cni("DEL", conf);
        assert.equal(del.code, 0, del.stdout + del.stderr);
        assert.deepEqual(await podLinks(w), [], "every link gone");
        assert.deepEqual(await ipamReservations(w.dataDir), [], "every address released");
        // Set aside for a look, out of every reader's way; the next DEL is quiet.
        const left = await listFiles(w.cacheDir);
        assert.deepEqual(left, [`attachments/.damaged-ctr-${w.pods[0].name}-eth0`]);
        assert.equal((await w.cni("DEL", conf)).code, 0);
        // The interface can be attached again.
        await attached(w, conf);
        assert.equal((await w.cni("DEL", conf)).code, 0);
      });
    });
  }
});

Deno.test("a damaged record and no result caches: DEL uses the conf's networks", async () => {
  await withWorld(1, async (w) => {
    const conf = twoNetworks(w);
    await attached(w, conf);
    await Deno.writeTextFile(recordFile(w), "");
    for (const f of await listFiles(`${w.cacheDir}/results`)) {
      await Deno.remove(`${w.cacheDir}/results/${f}`);
    }
    const del = await w.cni("DEL", conf);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await podLinks(w), []);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
  });
});

Deno.test("a second ADD without DEL is refused and leaves the first attachment whole", async () => {
  await withWorld(1, async (w) => {
    const conf = twoNetworks(w);
    await attached(w, conf);
    const before = await ipamReservations(w.dataDir);
    const record = await Deno.readTextFile(recordFile(w));
    const again = await w.cni("ADD", conf);
    assert.equal(again.code, 1);
    assert.equal(again.json?.code, 4);
    assert.match(String(again.json?.msg), /is attached already: DEL it before adding it again/);
    assert.deepEqual(await podLinks(w), ["eth0", "net1"]);
    assert.deepEqual(await ipamReservations(w.dataDir), before);
    assert.equal(await Deno.readTextFile(recordFile(w)), record, "the record is untouched");
    const del = await w.cni("DEL", conf);
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(await podLinks(w), []);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
  });
});

Deno.test("a recorded network this version rejects does not make DEL fail forever", async () => {
  await withWorld(1, async (w) => {
    const conf = twoNetworks(w);
    await attached(w, conf);
    // As a newer version could have written it: a spec version this one does not speak.
    const record = JSON.parse(await Deno.readTextFile(recordFile(w)));
    record.delegates[1].config.cniVersion = "9.9.0";
    await Deno.writeTextFile(recordFile(w), JSON.stringify(record));
    const del = await w.cni("DEL", conf);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await ipamReservations(w.dataDir), [], "its address released too");
    assert.deepEqual(await podLinks(w), ["net1"], "the rest goes with the namespace");
    assert.deepEqual(await listFiles(`${w.cacheDir}/attachments`), []);
  });
});

/** A plugin whose DEL fails while `${dir}/fail-del` exists (it records every call). */
async function flakyPlugin(dir: string): Promise<string> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  await Deno.writeTextFile(
    `${bin}/flaky`,
    `#!/bin/sh
echo "$CNI_COMMAND" >> "${dir}/flaky-calls"
case "$CNI_COMMAND" in
  ADD) echo '{"cniVersion":"1.0.0"}' ;;
  DEL) if [ -e "${dir}/fail-del" ]; then
         echo '{"cniVersion":"1.0.0","code":77,"msg":"flaky DEL failed"}'; exit 1
       fi ;;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;
esac
`,
    { mode: 0o755 },
  );
  return bin;
}

Deno.test("DEL without a usable record reports a delegate DEL that failed; the next DEL retries it", async () => {
  await withWorld(1, async (w) => {
    const bin = await flakyPlugin(w.dir);
    const conf = twoNetworks(w);
    conf.delegates.push({ cniVersion: "1.0.0", name: "dmg-f", type: "flaky" } as never);
    const env = { CNI_PATH: `${bin}:${REFERENCE_CNI}` };
    const add = await w.cni("ADD", conf, { env });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    await Deno.writeTextFile(recordFile(w), "{");
    await Deno.writeTextFile(`${w.dir}/fail-del`, "");
    const del = await w.cni("DEL", conf, { env });
    assert.equal(del.code, 1, "the failure is the DEL's");
    assert.equal(del.json?.code, 77);
    assert.match(String(del.json?.msg), /flaky DEL failed/);
    // What could be deleted is gone; what failed is recorded for the next DEL.
    assert.deepEqual(await podLinks(w), []);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
    const kept = JSON.parse(await Deno.readTextFile(recordFile(w)));
    assert.deepEqual(
      kept.delegates.filter((d: { deleted?: boolean }) => !d.deleted).map((d: { ifName: string }) =>
        d.ifName
      ),
      ["net2"],
    );
    await Deno.remove(`${w.dir}/fail-del`);
    const retry = await w.cni("DEL", conf, { env });
    assert.equal(retry.code, 0, retry.stdout);
    const calls = (await Deno.readTextFile(`${w.dir}/flaky-calls`)).trim().split("\n");
    assert.deepEqual(calls, ["ADD", "DEL", "DEL"]);
    assert.deepEqual(await listFiles(`${w.cacheDir}/attachments`), [
      `.damaged-ctr-${w.pods[0].name}-eth0`,
    ]);
  });
});

Deno.test("GC removes temp files of killed writes and week-old damaged files, nothing else", async () => {
  await withWorld(1, async (w) => {
    const conf = { ...twoNetworks(w), cniVersion: "1.1.0" };
    await attached(w, conf);
    const dir = `${w.cacheDir}/attachments`;
    const old = new Date(Date.now() - 8 * 24 * 3600_000);
    const leftovers = [
      `.ctr-x-eth0.tmp-4242-abc123`,
      `.damaged-ctr-y-eth0`,
    ];
    for (const name of leftovers) {
      await Deno.writeTextFile(`${dir}/${name}`, "{");
      await Deno.utime(`${dir}/${name}`, old, old);
    }
    // A write under way right now, and a damaged file set aside today, stay.
    await Deno.writeTextFile(`${dir}/.ctr-z-eth0.tmp-4243-def456`, "{");
    await Deno.writeTextFile(`${dir}/.damaged-ctr-w-eth0`, "{");
    const valid = [{ containerID: `ctr-${w.pods[0].name}`, ifname: "eth0" }];
    const gc = await w.cni("GC", { ...conf, "cni.dev/valid-attachments": valid });
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.deepEqual(await listFiles(dir), [
      ".ctr-z-eth0.tmp-4243-def456",
      ".damaged-ctr-w-eth0",
      `ctr-${w.pods[0].name}-eth0`,
    ]);
    assert.deepEqual(await podLinks(w), ["eth0", "net1"], "the valid attachment stays");
    assert.equal((await w.cni("DEL", conf)).code, 0);
  });
});

Deno.test("a delegateTimeout of 30 days bounds exec'd delegates instead of killing them at once", async () => {
  await withWorld(1, async (w) => {
    const bridge = linkName("hdt");
    const conf = {
      cniVersion: "1.0.0",
      name: "pods",
      type: "hydra",
      cacheDir: w.cacheDir,
      delegateTimeout: 30 * 24 * 3600,
      delegates: [{
        cniVersion: "1.0.0",
        name: "dmg-t",
        type: "bridge",
        bridge,
        ipam: {
          type: "host-local",
          dataDir: w.dataDir,
          ranges: [[{ subnet: `${w.subnet()}.0/24` }]],
        },
      }],
    };
    const add = await w.cni("ADD", conf);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await podLinks(w), ["eth0"]);
    assert.equal((await w.cni("DEL", conf)).code, 0);
    await run("ip", "-n", w.node.name, "link", "del", bridge).catch(() => {});
  });
});
