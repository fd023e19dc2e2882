/**
 * hydra-ipam and the reference host-local on one store: each continues the
 * other's state (round-robin position, duplicate detection, release), both
 * take the same lock, and the same sequence of commands gives the same
 * results and the same files from either.
 */

import assert from "node:assert/strict";
import { createNetns, deleteNetns, type TestNetns, withTempDir } from "../helpers/netns.ts";
import { withStore } from "../../ipam/store.ts";
import {
  type CniEnv,
  type ExecOutcome,
  execPlugin,
  hostLocal,
  hydraIpam,
  randomV4Subnet24,
  randomV6Subnet64,
  reservedNames,
  snapshot,
} from "./helpers.ts";

/** The network's first three octets, for writing addresses of a random /24. */
function prefix24(subnet: string): string {
  return subnet.split(".").slice(0, 3).join(".");
}

async function withNs(fn: (ns: TestNetns) => Promise<void>): Promise<void> {
  const ns = await createNetns("hyip");
  try {
    await fn(ns);
  } finally {
    await deleteNetns(ns);
  }
}

type Op = { cmd: CniEnv["command"]; id: string; ifName?: string; args?: string };

function run(binary: string, ns: TestNetns, config: unknown, op: Op): Promise<ExecOutcome> {
  return execPlugin(binary, {
    command: op.cmd,
    containerId: op.id,
    ifName: op.ifName ?? "eth0",
    netns: ns.path,
    args: op.args,
  }, config);
}

/** The addresses of a successful ADD; fails the test with the error otherwise. */
async function addOk(binary: string, ns: TestNetns, config: unknown, id: string, ifName = "eth0") {
  const out = await run(binary, ns, config, { cmd: "ADD", id, ifName });
  assert.equal(out.code, 0, `${binary} ADD ${id}: ${JSON.stringify(out.json)} ${out.stderr}`);
  return (out.json!.ips as { address: string }[]).map((i) => i.address);
}

async function delOk(binary: string, ns: TestNetns, config: unknown, id: string) {
  const out = await run(binary, ns, config, { cmd: "DEL", id });
  assert.equal(out.code, 0, `${binary} DEL ${id}: ${JSON.stringify(out.json)} ${out.stderr}`);
}

function singleRangeConfig(dataDir: string, subnet: string) {
  const p = prefix24(subnet);
  return {
    cniVersion: "1.0.0",
    name: "interop",
    type: "bridge",
    ipam: { type: "ipam", dataDir, subnet, rangeStart: `${p}.10`, rangeEnd: `${p}.15` },
  };
}

for (
  const [first, second, firstName, secondName] of [
    [hostLocal, hydraIpam, "host-local", "hydra-ipam"],
    [hydraIpam, hostLocal, "hydra-ipam", "host-local"],
  ] as const
) {
  Deno.test(`${secondName} takes over a store written by ${firstName}`, async () => {
    await withNs((ns) =>
      withTempDir(async (dataDir) => {
        const subnet = randomV4Subnet24();
        const p = prefix24(subnet);
        const config = singleRangeConfig(dataDir, subnet);
        const store = `${dataDir}/interop`;

        assert.deepEqual(await addOk(first, ns, config, "c1"), [`${p}.10/24`]);
        assert.deepEqual(await addOk(first, ns, config, "c2"), [`${p}.11/24`]);
        assert.deepEqual(await addOk(first, ns, config, "c3"), [`${p}.12/24`]);
        await delOk(first, ns, config, "c2");

        // Round-robin resumes after the last reservation, not at the freed address.
        assert.deepEqual(await addOk(second, ns, config, "c4"), [`${p}.13/24`]);
        // The other plugin's reservation counts for duplicate detection.
        const dup = await run(second, ns, config, { cmd: "ADD", id: "c1" });
        assert.notEqual(dup.code, 0);
        assert.match(
          String(dup.json?.msg),
          new RegExp(`${p.replaceAll(".", "\\.")}\\.10 has been allocated to c1, duplicate`),
        );
        assert.deepEqual(await addOk(second, ns, config, "c5"), [`${p}.14/24`]);
        assert.deepEqual(await addOk(second, ns, config, "c6"), [`${p}.15/24`]);
        // Wraps to the range start and skips what the first plugin still holds.
        assert.deepEqual(await addOk(second, ns, config, "c7"), [`${p}.11/24`]);

        // Each releases and checks the other's reservations.
        const check = await run(second, ns, config, { cmd: "CHECK", id: "c3" });
        assert.equal(check.code, 0, JSON.stringify(check.json));
        await delOk(second, ns, config, "c1");
        await delOk(first, ns, config, "c4");
        assert.deepEqual(await snapshot(store), {
          [`${p}.11`]: "c7\r\neth0",
          [`${p}.12`]: "c3\r\neth0",
          [`${p}.14`]: "c5\r\neth0",
          [`${p}.15`]: "c6\r\neth0",
          "last_reserved_ip.0": `${p}.11`,
        });
      })
    );
  });
}

/** Results with host-local's empty "dns": {} dropped (the spec says to omit it). */
function normalized(out: ExecOutcome): unknown {
  if (out.code !== 0) {
    assert.equal(typeof out.json?.msg, "string", `no error message: ${out.stderr}`);
    return { error: out.json?.msg };
  }
  const json = { ...out.json };
  if (json.dns && Object.keys(json.dns as object).length === 0) delete json.dns;
  return json;
}

Deno.test("the same commands give the same results and files from both plugins", async () => {
  await withNs((ns) =>
    withTempDir(async (dataDir) => {
      const v4 = prefix24(randomV4Subnet24());
      const v6 = randomV6Subnet64().replace("::/64", "::");
      const config = (dir: string) => ({
        cniVersion: "1.0.0",
        name: "diff",
        type: "bridge",
        ipam: {
          type: "ipam",
          dataDir: dir,
          ranges: [
            [
              { subnet: `${v4}.0/29` },
              {
                subnet: `${v4}.8/29`,
                rangeStart: `${v4}.11`,
                rangeEnd: `${v4}.13`,
                gateway: `${v4}.12`,
              },
            ],
            [{ subnet: `${v6}/125` }],
          ],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0", gw: `${v6}1` }],
        },
      });
      const ops: Op[] = [
        { cmd: "ADD", id: "a" },
        { cmd: "ADD", id: "b" },
        { cmd: "ADD", id: "a", ifName: "net1" },
        { cmd: "ADD", id: "a" }, // duplicate
        { cmd: "DEL", id: "b" },
        { cmd: "ADD", id: "c", args: `IgnoreUnknown=1;K8S_POD_NAME=x;IP=${v4}.5` },
        { cmd: "ADD", id: "d", args: `IP=${v4}.5` }, // requested address taken
        { cmd: "ADD", id: "e" },
        { cmd: "ADD", id: "f" },
        { cmd: "ADD", id: "g" },
        { cmd: "ADD", id: "h" }, // the IPv6 set is exhausted: the IPv4 address goes back
        { cmd: "DEL", id: "a", ifName: "net1" },
        { cmd: "ADD", id: "i" },
        { cmd: "DEL", id: "nobody" },
        { cmd: "DEL", id: "c" },
        { cmd: "ADD", id: "j" },
      ];
      const dirs = { ref: `${dataDir}/ref`, hydra: `${dataDir}/hydra` };
      for (const op of ops) {
        const ref = await run(hostLocal, ns, config(dirs.ref), op);
        const ours = await run(hydraIpam, ns, config(dirs.hydra), op);
        const what = `${op.cmd} ${op.id}/${op.ifName ?? "eth0"}`;
        assert.deepEqual(normalized(ours), normalized(ref), what);
        assert.deepEqual(
          await snapshot(`${dirs.hydra}/diff`),
          await snapshot(`${dirs.ref}/diff`),
          what,
        );
      }
      // The sequence did reach exhaustion and reuse.
      const final = reservedNames(await snapshot(`${dirs.hydra}/diff`));
      assert.equal(final.length, 12, final.join(" "));
    })
  );
});

Deno.test("host-local waits for the lock hydra-ipam holds", async () => {
  await withNs((ns) =>
    withTempDir(async (dataDir) => {
      const subnet = randomV4Subnet24();
      const config = singleRangeConfig(dataDir, subnet);
      const store = `${dataDir}/interop`;
      let blocked = false;
      const held = await withStore(dataDir, "interop", async () => {
        const lockIno = (await Deno.stat(`${store}/lock`)).ino!;
        const child = new Deno.Command(hostLocal, {
          env: {
            CNI_COMMAND: "ADD",
            CNI_CONTAINERID: "waiter",
            CNI_NETNS: ns.path,
            CNI_IFNAME: "eth0",
            CNI_PATH: "/usr/lib/cni",
          },
          clearEnv: true,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(JSON.stringify(config)));
        await w.close();
        const waiting = new RegExp(
          `-> FLOCK\\s+ADVISORY\\s+WRITE\\s+${child.pid}\\s+\\S+:${lockIno}\\s`,
        );
        for (let i = 0; i < 1000 && !blocked; i++) {
          blocked = waiting.test(await Deno.readTextFile("/proc/locks"));
          if (!blocked) await new Promise((r) => setTimeout(r, 10));
        }
        // While hydra holds the lock, host-local has reserved nothing.
        assert.deepEqual(reservedNames(await snapshot(store)), []);
        // Wrapped: awaiting host-local here, under the lock it waits for, would deadlock.
        return { output: child.output() };
      });
      const done = await held.output;
      assert.ok(blocked, "host-local never waited on the lock");
      assert.equal(done.code, 0, new TextDecoder().decode(done.stdout));
      assert.deepEqual(reservedNames(await snapshot(store)), [`${prefix24(subnet)}.10`]);
    })
  );
});

Deno.test("hydra-ipam garbage-collects a store host-local wrote (GC and STATUS, CNI 1.1.0)", async () => {
  await withNs((ns) =>
    withTempDir(async (dataDir) => {
      const subnet = randomV4Subnet24();
      const p = prefix24(subnet);
      const config = singleRangeConfig(dataDir, subnet);
      for (const id of ["keep", "drop1", "drop2"]) await addOk(hostLocal, ns, config, id);
      const newer = { ...config, cniVersion: "1.1.0" };
      const status = await execPlugin(hydraIpam, { command: "STATUS" }, newer);
      assert.equal(status.code, 0, JSON.stringify(status.json));
      const gc = await execPlugin(hydraIpam, { command: "GC" }, {
        ...newer,
        "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
      });
      assert.equal(gc.code, 0, JSON.stringify(gc.json));
      assert.equal(gc.json, undefined);
      assert.deepEqual(reservedNames(await snapshot(`${dataDir}/interop`)), [`${p}.10`]);
    })
  );
});
