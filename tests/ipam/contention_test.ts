/**
 * hydra-ipam under contention: 200 ADDs at once on a range of exactly 200
 * addresses, from three kinds of callers racing for the same store (calls
 * inside this process, exec'd hydra-ipam processes and exec'd host-local
 * processes), then exhaustion and release.
 */

import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { CmdArgs, NetConf, Result } from "../../cni/types.ts";
import { plugin } from "../../ipam/host_local.ts";
import { createNetns, deleteNetns, withTempDir } from "../helpers/netns.ts";
import {
  type ExecOutcome,
  execPlugin,
  hostLocal,
  hydraIpam,
  mapLimited,
  randomV4Subnet24,
  reservedNames,
  snapshot,
} from "./helpers.ts";

const IN_PROCESS = 120;
const EXEC_HYDRA = 60;
const EXEC_HOST_LOCAL = 20;
/** Start-to-start spacing of the in-process ADDs. */
const IN_PROCESS_SPACING_MS = 40;
/** Processes in flight at once: enough to contend, few enough for two cores. */
const EXEC_PARALLEL = 6;

function inProcessAdd(config: NetConf, containerId: string): Promise<string> {
  const args: CmdArgs = {
    command: "ADD",
    containerId,
    netns: "",
    ifName: "eth0",
    args: "",
    path: [],
    stdinData: new Uint8Array(),
    config,
  };
  return plugin.add(args).then((r) => (r as Result).ips![0].address);
}

function addressOf(out: ExecOutcome, who: string): string {
  assert.equal(out.code, 0, `${who}: ${JSON.stringify(out.json)} ${out.stderr}`);
  return (out.json!.ips as { address: string }[])[0].address;
}

Deno.test("200 concurrent ADDs on one range: no duplicate, then a clean exhaustion and a release", async () => {
  const ns = await createNetns("hyic");
  try {
    await withTempDir(async (dataDir) => {
      const subnet = randomV4Subnet24();
      const p = subnet.split(".").slice(0, 3).join(".");
      // .1 is the gateway: .2 to .201 are exactly 200 addresses.
      const config: NetConf = {
        cniVersion: "1.0.0",
        name: "contention",
        type: "bridge",
        ipam: { type: "ipam", dataDir, subnet, rangeStart: `${p}.1`, rangeEnd: `${p}.201` },
      };
      const store = `${dataDir}/contention`;
      const exec = (binary: string, command: "ADD" | "DEL", id: string) =>
        execPlugin(binary, { command, containerId: id, ifName: "eth0", netns: ns.path }, config);

      const execJobs = [
        ...Array.from({ length: EXEC_HYDRA }, (_, i) => ({ binary: hydraIpam, id: `hx${i}` })),
        ...Array.from({ length: EXEC_HOST_LOCAL }, (_, i) => ({ binary: hostLocal, id: `hl${i}` })),
      ];
      const [inProcess, execd] = await Promise.all([
        // Spread over the seconds the processes take, so all three kinds interleave.
        Promise.all(
          Array.from({ length: IN_PROCESS }, async (_, i) => {
            await new Promise((resolve) => setTimeout(resolve, i * IN_PROCESS_SPACING_MS));
            return inProcessAdd(config, `ip${i}`);
          }),
        ),
        mapLimited(
          execJobs,
          EXEC_PARALLEL,
          async (job) => addressOf(await exec(job.binary, "ADD", job.id), job.id),
        ),
      ]);

      const owners = new Map<string, string>();
      inProcess.forEach((a, i) => owners.set(a, `ip${i}`));
      execd.forEach((a, i) => {
        assert.ok(!owners.has(a), `${a} handed out twice`);
        owners.set(a, execJobs[i].id);
      });
      assert.equal(owners.size, 200);
      const full = await snapshot(store);
      const names = reservedNames(full);
      assert.equal(names.length, 200);
      for (const [address, id] of owners) {
        assert.ok(address.endsWith("/24"), address);
        assert.equal(full[address.replace("/24", "")], `${id}\r\neth0`);
      }
      assert.deepEqual(Object.keys(full).filter((n) => n.startsWith(".")), []);

      // Exhausted: every further ADD fails with the same clear error and leaves no trace.
      const rangeText = `${p}.1-${p}.201`;
      const msg =
        `failed to allocate for range 0: no IP addresses available in range set: ${rangeText}`;
      const failures = await Promise.all([
        ...[0, 1, 2, 3].map((i) => exec(hydraIpam, "ADD", `late${i}`)),
        ...[4, 5, 6, 7].map((i) =>
          inProcessAdd(config, `late${i}`).then(
            () => assert.fail("allocated past exhaustion"),
            (err: unknown) => err,
          )
        ),
      ]);
      for (const f of failures.slice(0, 4) as ExecOutcome[]) {
        assert.equal(f.code, 1);
        assert.deepEqual(f.json, { cniVersion: "1.0.0", code: ErrorCode.TryAgainLater, msg });
      }
      for (const err of failures.slice(4)) {
        assert.ok(err instanceof CniError);
        assert.equal(err.code, ErrorCode.TryAgainLater);
        assert.equal(err.message, msg);
      }
      assert.deepEqual(await snapshot(store), full);

      // A DEL frees exactly one address, and the next ADD gets it.
      const freed = [...owners].find(([, id]) => id === "hl3")![0];
      const del = await exec(hydraIpam, "DEL", "hl3");
      assert.equal(del.code, 0, JSON.stringify(del.json));
      assert.equal(reservedNames(await snapshot(store)).length, 199);
      assert.equal(addressOf(await exec(hydraIpam, "ADD", "after"), "after"), freed);
      assert.equal(reservedNames(await snapshot(store)).length, 200);
    });
  } finally {
    await deleteNetns(ns);
  }
});
