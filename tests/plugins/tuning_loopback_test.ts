/**
 * hydra-tuning and hydra-loopback against the reference tuning and
 * loopback plugins.
 */

import assert from "node:assert/strict";
import { observeBoth, type Side } from "./differential.ts";
import {
  containerId,
  debianDir,
  hydraBin,
  inNs,
  invoke,
  mustInvoke,
  reference,
  withWorld,
  type World,
} from "./helpers.ts";

const ref = reference();

function sides(kind: string, conf: (w: World) => Record<string, unknown>, dir = ref.dir) {
  const pair: [Side, Side] = [
    { binary: `${dir}/${kind}`, path: [dir], config: (w) => ({ ...conf(w), type: kind }) },
    {
      binary: `${hydraBin}/hydra-${kind}`,
      path: [dir],
      config: (w) => ({ ...conf(w), type: `hydra-${kind}` }),
    },
  ];
  return pair;
}

/** A veth pair eth0/eth0p inside the pod, as an earlier plugin in a chain would leave it. */
async function podVeth(w: World): Promise<void> {
  const pod = w.pods[0];
  await inNs(
    pod,
    "ip",
    "link",
    "add",
    "eth0",
    "address",
    "0a:58:01:02:03:04",
    "type",
    "veth",
    "peer",
    "name",
    "eth0p",
  );
  await inNs(pod, "ip", "link", "set", "eth0", "up");
  await inNs(pod, "ip", "link", "set", "eth0p", "up");
  await inNs(pod, "ip", "addr", "add", "192.0.2.5/24", "dev", "eth0");
}

function prevResult(w: World, version: string) {
  return {
    cniVersion: version,
    interfaces: [{ name: "eth0", mac: "0a:58:01:02:03:04", sandbox: w.pods[0].path }],
    ips: [{ address: "192.0.2.5/24", gateway: "192.0.2.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
  };
}

const TUNED = [
  "net/ipv4/conf/eth0/arp_filter",
  "net/ipv6/conf/eth0/accept_ra",
  "net/ipv4/conf/all/arp_ignore",
];

function tuningConf(w: World, version: string) {
  return {
    cniVersion: version,
    name: "tune",
    sysctl: {
      "net.ipv4.conf.IFNAME.arp_filter": "1",
      "net/ipv6/conf/IFNAME/accept_ra": "0",
      "net.ipv4.conf.all.arp_ignore": "2",
    },
    mac: "0a:58:0a:0a:0a:0a",
    promisc: true,
    mtu: 1280,
    allmulti: true,
    txQLen: 42,
    dataDir: `${w.dir}/tuning`,
  };
}

Deno.test(`tuning: sysctls, MAC, MTU, promisc, allmulti and txQLen match the reference (CNI ${ref.version}), and DEL restores`, async () => {
  const [r, h] = sides("tuning", (w) => tuningConf(w, ref.version));
  const { want, got } = await observeBoth(
    {
      setup: podVeth,
      prevResult: (w) => prevResult(w, ref.version),
      podSysctls: TUNED,
    },
    r,
    h,
  );
  assert.equal(want.add.code, 0);
  assert.deepEqual(got, want);
});

Deno.test("tuning: a backup written by hydra-tuning is restored by the reference DEL", async () => {
  await withWorld(1, async (w) => {
    await podVeth(w);
    const conf = { ...tuningConf(w, "1.0.0"), sysctl: {} };
    const inv = {
      containerId: containerId(),
      netns: w.pods[0].path,
      ifName: "eth0",
      path: [debianDir],
    };
    const result = await mustInvoke(
      w.host,
      `${hydraBin}/hydra-tuning`,
      { ...inv, command: "ADD" },
      {
        ...conf,
        type: "hydra-tuning",
        prevResult: prevResult(w, "1.0.0"),
      },
    );
    assert.equal((result!.interfaces as { mac: string }[])[0].mac, "0a:58:0a:0a:0a:0a");
    const backup = JSON.parse(
      await Deno.readTextFile(`${w.dir}/tuning/${inv.containerId}_eth0.json`),
    );
    assert.deepEqual(backup, {
      mac: "0a:58:01:02:03:04",
      promisc: false,
      mtu: 1500,
      allmulti: false,
      txQLen: 1000,
    });
    await mustInvoke(w.host, `${ref.dir}/tuning`, { ...inv, command: "DEL" }, {
      ...conf,
      type: "tuning",
      prevResult: result,
    });
    const [link] = await w.pods[0].ipJson<
      { address: string; mtu: number; flags: string[]; txqlen: number }[]
    >("link", "show", "eth0");
    assert.equal(link.address, "0a:58:01:02:03:04");
    assert.equal(link.mtu, 1500);
    assert.equal(link.txqlen, 1000);
    assert.ok(!link.flags.includes("PROMISC") && !link.flags.includes("ALLMULTI"));
    await assert.rejects(
      Deno.stat(`${w.dir}/tuning/${inv.containerId}_eth0.json`),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("tuning: DEL removes a backup a crash cut short, or one kept for an interface that is gone, and a dead writer's temp file", async () => {
  await withWorld(1, async (w) => {
    await podVeth(w);
    const conf = {
      ...tuningConf(w, "1.0.0"),
      sysctl: {},
      type: "hydra-tuning",
      prevResult: prevResult(w, "1.0.0"),
    };
    const dir = `${w.dir}/tuning`;
    const call = (command: "ADD" | "DEL", cid: string) =>
      mustInvoke(w.host, `${hydraBin}/hydra-tuning`, {
        containerId: cid,
        netns: w.pods[0].path,
        ifName: "eth0",
        path: [debianDir],
        command,
      }, conf);
    const leftFor = (cid: string) => [...Deno.readDirSync(dir)].filter((e) => e.name.includes(cid));

    // A backup zeroed by a power cut (unsynced), and a temp file of a writer killed half-way.
    const torn = containerId();
    await call("ADD", torn);
    const path = `${dir}/${torn}_eth0.json`;
    Deno.writeFileSync(path, new Uint8Array(Deno.statSync(path).size));
    Deno.writeTextFileSync(`${dir}/.${torn}_eth0.json.tmp-4242-abc`, '{"mt');
    await call("DEL", torn);
    assert.deepEqual(leftFor(torn), []);

    // A backup of an interface already gone: nothing to put back, nothing to keep.
    const gone = containerId();
    await call("ADD", gone);
    await inNs(w.pods[0], "ip", "link", "del", "eth0");
    await call("DEL", gone);
    assert.deepEqual(leftFor(gone), []);
  });
});

Deno.test("tuning: a sysctl outside /proc/sys/net is refused; a failing one undoes the others", async () => {
  await withWorld(1, async (w) => {
    await podVeth(w);
    const inv = {
      command: "ADD" as const,
      containerId: containerId(),
      netns: w.pods[0].path,
      ifName: "eth0",
      path: [ref.dir],
    };
    const attempt = (sysctl: Record<string, string>) =>
      invoke(w.host, `${hydraBin}/hydra-tuning`, inv, {
        ...tuningConf(w, "1.1.0"),
        type: "hydra-tuning",
        sysctl,
        prevResult: prevResult(w, "1.1.0"),
      });
    for (const key of ["kernel.hostname", "/kernel/hostname", "vm/swappiness"]) {
      const out = await attempt({ [key]: "1" });
      assert.equal(out.json?.code, 7, key);
      assert.match(String(out.json?.msg), /invalid net sysctl key/);
    }
    const out = await attempt({
      "net.ipv4.conf.IFNAME.arp_filter": "1",
      "net.ipv4.conf.IFNAME.no_such_key": "1",
    });
    assert.notEqual(out.code, 0);
    assert.match(String(out.json?.msg), /no_such_key/);
    const [arpFilter] = (await inNs(w.pods[0], "cat", "/proc/sys/net/ipv4/conf/eth0/arp_filter"))
      .split("\n");
    assert.equal(arpFilter, "0");
    const [link] = await w.pods[0].ipJson<{ address: string; mtu: number }[]>(
      "link",
      "show",
      "eth0",
    );
    assert.equal(link.address, "0a:58:01:02:03:04");
    assert.equal(link.mtu, 1500);
  });
});

async function loDown(w: World): Promise<void> {
  await inNs(w.pods[0], "ip", "link", "set", "lo", "down");
}

Deno.test(`loopback: standalone result and state match the reference (CNI ${ref.version})`, async () => {
  const [r, h] = sides("loopback", () => ({ cniVersion: ref.version, name: "lo" }));
  const { want, got } = await observeBoth({ setup: loDown, ifName: "lo" }, r, h);
  assert.equal(want.add.code, 0);
  assert.deepEqual(got, want);
});

Deno.test("loopback: CNI 0.2.0 gives the 0.2.0 result shape, with the reference's kernel state", async () => {
  const [r, h] = sides("loopback", () => ({ cniVersion: "0.2.0", name: "lo" }));
  const { want, got } = await observeBoth({ setup: loDown, ifName: "lo", noCheck: true }, r, h);
  // The reference prints a 1.x-shaped result labelled 0.2.0; hydra prints
  // what the 0.2.0 spec defines.
  assert.deepEqual(got.add.result, {
    cniVersion: "0.2.0",
    ip4: { ip: "127.0.0.1/8" },
    ip6: { ip: "::1/128" },
  });
  assert.deepEqual({ ...got, add: undefined }, { ...want, add: undefined });
});

Deno.test("loopback: chained, the previous result passes through unchanged", async () => {
  const [r, h] = sides("loopback", () => ({ cniVersion: "1.0.0", name: "lo" }), debianDir);
  const { want, got } = await observeBoth(
    {
      setup: loDown,
      prevResult: (w) => prevResult(w, "1.0.0"),
    },
    r,
    h,
  );
  assert.deepEqual(got, want);
  assert.deepEqual(got.add.result, {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", mac: "MAC", sandbox: "SANDBOX" }],
    ips: [{ address: "192.0.2.5/24", gateway: "192.0.2.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
  });
});
