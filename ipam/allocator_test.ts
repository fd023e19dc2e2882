import assert from "node:assert/strict";
import { join } from "node:path";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { CmdArgs, Command, NetConf, Result } from "../cni/types.ts";
import { candidates } from "./allocator.ts";
import { loadHostLocalConfig } from "./config.ts";
import { formatIpAddr, parseIpAddr } from "../ipaddr/ip.ts";
import { plugin } from "./host_local.ts";

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-ipam-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function netConf(
  dataDir: string,
  ipam: Record<string, unknown>,
  extra: Partial<NetConf> = {},
): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "n",
    type: "bridge",
    ipam: { type: "hydra-ipam", dataDir, ...ipam },
    ...extra,
  };
}

function cmd(
  command: Command,
  config: NetConf,
  containerId: string,
  ifName = "eth0",
  args = "",
): CmdArgs {
  return {
    command,
    containerId,
    netns: "",
    ifName,
    args,
    path: [],
    stdinData: new Uint8Array(),
    config,
  };
}

async function addIps(config: NetConf, id: string, ifName = "eth0", args = ""): Promise<string[]> {
  const result = await plugin.add(cmd("ADD", config, id, ifName, args)) as Result;
  return (result.ips ?? []).map((c) => c.address);
}

/** Seeds a store: reservation files and last_reserved_ip.0. */
async function seed(dataDir: string, taken: string[], last?: string): Promise<void> {
  const dir = join(dataDir, "n");
  await Deno.mkdir(dir, { recursive: true });
  for (const ip of taken) await Deno.writeTextFile(join(dir, ip), `other-${ip}\r\neth0`);
  if (last) await Deno.writeTextFile(join(dir, "last_reserved_ip.0"), last);
}

async function files(dataDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(join(dataDir, "n"))) {
    out[e.name] = await Deno.readTextFile(join(dataDir, "n", e.name));
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: number, message: string | RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CniError, String(err));
    assert.equal(err.code, code, err.message);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

Deno.test("candidate order: after the last reservation, wrapping, gateway left out", () => {
  const cfg = loadHostLocalConfig(netConf("/x", { subnet: "10.0.0.0/29" }), "");
  const order = (last?: string) =>
    [...candidates(cfg.rangeSets[0], last ? parseIpAddr(last) : undefined)].map((c) =>
      formatIpAddr(c.ip)
    );
  assert.deepEqual(order(), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
  assert.deepEqual(order("10.0.0.4"), ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
  assert.deepEqual(order("10.0.0.6"), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
  // A last address outside the set restarts from the first range's start.
  assert.deepEqual(order("10.0.0.128"), order());
  const two = loadHostLocalConfig(
    netConf("/x", {
      ranges: [[{ subnet: "10.0.0.0/30" }, { subnet: "10.0.1.0/30", gateway: "10.0.1.2" }]],
    }),
    "",
  ).rangeSets[0];
  assert.deepEqual(
    [...candidates(two, parseIpAddr("10.0.0.2"))].map((c) => formatIpAddr(c.ip)),
    ["10.0.1.1", "10.0.0.2"],
  );
});

Deno.test("round-robin allocation follows host-local", async () => {
  const cases: { subnets: string[]; taken: string[]; last?: string; want: string }[] = [
    { subnets: ["10.0.0.0/29"], taken: [], want: "10.0.0.2/29" },
    { subnets: ["2001:db8:1::/64"], taken: [], want: "2001:db8:1::2/64" },
    { subnets: ["10.0.0.0/30"], taken: [], want: "10.0.0.2/30" },
    { subnets: ["10.0.0.0/29"], taken: ["10.0.0.2"], want: "10.0.0.3/29" },
    { subnets: ["10.0.0.0/29"], taken: [], last: "10.0.0.5", want: "10.0.0.6/29" },
    {
      subnets: ["10.0.0.0/29"],
      taken: ["10.0.0.4", "10.0.0.5"],
      last: "10.0.0.3",
      want: "10.0.0.6/29",
    },
    { subnets: ["10.0.0.0/29"], taken: ["10.0.0.6"], last: "10.0.0.5", want: "10.0.0.2/29" },
    { subnets: ["10.0.0.0/29"], taken: ["10.0.0.2"], last: "10.0.0.128", want: "10.0.0.3/29" },
    {
      subnets: ["10.0.0.0/29"],
      taken: ["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
      last: "10.0.0.3",
      want: "10.0.0.3/29",
    },
    { subnets: ["10.0.0.0/30", "10.0.1.0/30"], taken: [], want: "10.0.0.2/30" },
    { subnets: ["10.0.0.0/30", "10.0.1.0/30"], taken: [], last: "10.0.0.2", want: "10.0.1.2/30" },
    {
      subnets: ["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"],
      taken: [],
      last: "10.0.2.2",
      want: "10.0.0.2/30",
    },
    // A trailing newline makes the hint unreadable to host-local, so it starts over.
    { subnets: ["10.0.0.0/29"], taken: [], last: "10.0.0.4\n", want: "10.0.0.2/29" },
  ];
  for (const c of cases) {
    await withDataDir(async (dir) => {
      await seed(dir, c.taken, c.last);
      const config = netConf(dir, { ranges: [c.subnets.map((subnet) => ({ subnet }))] });
      assert.deepEqual(await addIps(config, "c"), [c.want], JSON.stringify(c));
      assert.equal((await files(dir))["last_reserved_ip.0"], c.want.split("/")[0]);
    });
  }
});

Deno.test("files are named by the address and hold id CRLF ifname", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, {
      ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00:0:0:0::/120" }]],
    });
    assert.deepEqual(await addIps(config, " cid1 ", "net1"), ["10.0.0.2/24", "fd00::2/120"]);
    assert.deepEqual(await files(dir), {
      "lock": "",
      "10.0.0.2": "cid1\r\nnet1",
      "fd00::2": "cid1\r\nnet1",
      "last_reserved_ip.0": "10.0.0.2",
      "last_reserved_ip.1": "fd00::2",
    });
    const st = await Deno.stat(join(dir, "n", "10.0.0.2"));
    assert.equal(st.mode! & 0o777, 0o600);
  });
});

Deno.test("exhaustion is error 11 naming the ranges, leaving no file behind", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, {
      ranges: [[{ subnet: "10.0.0.0/30" }, { subnet: "10.0.1.0/30" }]],
    });
    assert.deepEqual(await addIps(config, "a"), ["10.0.0.2/30"]);
    assert.deepEqual(await addIps(config, "b"), ["10.0.1.2/30"]);
    const before = await files(dir);
    await rejectsWith(
      addIps(config, "c"),
      ErrorCode.TryAgainLater,
      "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2",
    );
    assert.deepEqual(await files(dir), before);
    await plugin.del(cmd("DEL", config, "a"));
    assert.deepEqual(await addIps(config, "c"), ["10.0.0.2/30"]);
  });
});

Deno.test("a requested address is reserved, and refused when taken or the gateway", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    assert.deepEqual(await addIps(config, "a", "eth0", "IP=10.0.0.50"), ["10.0.0.50/24"]);
    await rejectsWith(
      addIps(config, "b", "eth0", "IP=10.0.0.50"),
      ErrorCode.TryAgainLater,
      "failed to allocate for range 0: requested IP address 10.0.0.50 is not available in range set 10.0.0.1-10.0.0.254",
    );
    await rejectsWith(
      addIps(config, "b", "eth0", "IP=10.0.0.1"),
      ErrorCode.InvalidNetworkConfig,
      "failed to allocate for range 0: requested ip 10.0.0.1 is subnet's gateway",
    );
    await rejectsWith(
      addIps({ ...config, runtimeConfig: { ips: ["10.9.9.9/24"] } }, "b"),
      ErrorCode.InvalidNetworkConfig,
      "failed to allocate all requested IPs: 10.9.9.9",
    );
    // The address allocated before the unmet request was released again.
    assert.deepEqual(Object.keys(await files(dir)).filter((f) => f.startsWith("10.")), [
      "10.0.0.50",
    ]);
  });
});

Deno.test("a second ADD for the same attachment is refused; another ifname is a new attachment", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    await addIps(config, "a");
    await rejectsWith(
      addIps(config, "a"),
      ErrorCode.Internal,
      "failed to allocate for range 0: 10.0.0.2 has been allocated to a, duplicate allocation is not allowed",
    );
    assert.deepEqual(await addIps(config, "a", "net1"), ["10.0.0.3/24"]);
  });
});

Deno.test("dual-stack: a failure in a later set releases the earlier set's address", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, {
      ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/126" }]],
    });
    assert.deepEqual(await addIps(config, "a"), ["10.0.0.2/24", "fd00::2/126"]);
    assert.deepEqual(await addIps(config, "b"), ["10.0.0.3/24", "fd00::3/126"]);
    await rejectsWith(
      addIps(config, "c"),
      ErrorCode.TryAgainLater,
      /range 1: no IP addresses available in range set: fd00::1-fd00::3/,
    );
    const names = Object.keys(await files(dir)).filter((f) => !f.startsWith("l")).sort();
    assert.deepEqual(names, ["10.0.0.2", "10.0.0.3", "fd00::2", "fd00::3"]);
  });
});

Deno.test("DEL releases by container ID and ifname, legacy ID-only files too, and repeats fine", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    await addIps(config, "a", "eth0");
    await addIps(config, "a", "net1");
    await plugin.del(cmd("DEL", config, "a", "eth0"));
    assert.deepEqual(Object.keys(await files(dir)).filter((f) => f.startsWith("10.")), [
      "10.0.0.3",
    ]);
    await plugin.del(cmd("DEL", config, "a", "eth0"));

    // Files written before host-local recorded the ifname hold the ID alone.
    await Deno.writeTextFile(join(dir, "n", "10.0.0.9"), "legacy\n");
    await rejectsWith(
      addIps(config, "legacy"),
      ErrorCode.Internal,
      /10\.0\.0\.9 has been allocated to legacy/,
    );
    await plugin.check(cmd("CHECK", config, "legacy"));
    await plugin.del(cmd("DEL", config, "legacy"));
    assert.equal((await files(dir))["10.0.0.9"], undefined);
  });
});

Deno.test("CHECK finds the reservation and the previous result's addresses", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    await rejectsWith(
      plugin.check(cmd("CHECK", config, "a")),
      ErrorCode.Internal,
      /failed to find an address reserved for container a/,
    );
    await addIps(config, "a");
    const prevResult = { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] };
    await plugin.check(cmd("CHECK", { ...config, prevResult }, "a"));
    const wrong = { cniVersion: "1.0.0", ips: [{ address: "10.0.0.7/24" }] };
    await rejectsWith(
      plugin.check(cmd("CHECK", { ...config, prevResult: wrong }, "a")),
      ErrorCode.Internal,
      /10\.0\.0\.7 of the previous result is not reserved/,
    );
  });
});

Deno.test("GC releases what no valid attachment owns, torn files included", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    await addIps(config, "keep", "eth0");
    await addIps(config, "keep", "net1");
    await addIps(config, "gone", "eth0");
    await Deno.writeTextFile(join(dir, "n", "10.0.0.20"), "keep");
    await Deno.writeTextFile(join(dir, "n", "10.0.0.21"), "");
    const valid = [{ containerID: "keep", ifname: "eth0" }];
    await plugin.gc!(cmd("GC", { ...config, "cni.dev/valid-attachments": valid }, ""));
    const left = Object.keys(await files(dir)).filter((f) => f.startsWith("10.")).sort();
    assert.deepEqual(left, ["10.0.0.2", "10.0.0.20"]);
  });
});

Deno.test("STATUS fails with 50 when the store cannot be written", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/24" });
    await plugin.status!(cmd("STATUS", config, ""));
    const file = join(dir, "not-a-dir");
    await Deno.writeTextFile(file, "");
    await rejectsWith(
      plugin.status!(cmd("STATUS", netConf(file, { subnet: "10.0.0.0/24" }), "")),
      ErrorCode.PluginNotAvailable,
      /not writable/,
    );
  });
});

Deno.test("results carry routes, dns from resolvConf and the config's version", async () => {
  await withDataDir(async (dir) => {
    const resolv = join(dir, "resolv.conf");
    await Deno.writeTextFile(
      resolv,
      "# c\nnameserver 10.0.0.53\n; c\nsearch a.example b.example\noptions ndots:2\ndomain example\n",
    );
    const config = netConf(dir, {
      subnet: "10.0.0.0/24",
      routes: [{ dst: "0.0.0.0/0" }],
      resolvConf: resolv,
    }, { cniVersion: "0.4.0" });
    const result = await plugin.add(cmd("ADD", config, "a"));
    assert.deepEqual(result, {
      cniVersion: "0.4.0",
      ips: [{ version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: {
        nameservers: ["10.0.0.53"],
        domain: "example",
        search: ["a.example", "b.example"],
        options: ["ndots:2"],
      },
    });
    const legacy = await plugin.add(cmd("ADD", { ...config, cniVersion: "0.2.0" }, "b"));
    assert.equal((legacy as { ip4?: { ip: string } }).ip4?.ip, "10.0.0.3/24");
  });
});

Deno.test("a reservation whose owner a crash lost is freed by the next ADD or DEL, not only by GC", async () => {
  await withDataDir(async (dir) => {
    const config = netConf(dir, { subnet: "10.0.0.0/30" });
    // The only address of the range, held by a file a crash left empty.
    await Deno.mkdir(join(dir, "n"), { recursive: true });
    await Deno.writeTextFile(join(dir, "n", "10.0.0.2"), "");
    await addIps(config, "a");
    assert.deepEqual((await files(dir))["10.0.0.2"], "a\r\neth0");
    await Deno.writeTextFile(join(dir, "n", "10.0.0.9"), " \n");
    await plugin.del(cmd("DEL", config, "someone-else"));
    assert.equal((await files(dir))["10.0.0.9"], undefined);
  });
});
