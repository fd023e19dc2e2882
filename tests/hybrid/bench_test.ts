/**
 * The hybrid benchmark, short: bench/hybrid.ts with few probes, a few MiB
 * and 50 nodes must pass its path checks (every pair's packets on the path
 * its kind names) and print the JSON the benchmark promises. The full run
 * (20 probes, 1,000 nodes) is `deno task bench --only hybrid`.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const bench = fileURLToPath(new URL("../../bench/hybrid.ts", import.meta.url));

Deno.test("bench/hybrid: a short run checks every path and prints its JSON", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", bench, "--probes", "3", "--nodes", "50", "--mib", "4"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    "overlay-overlay-cross",
    "overlay-overlay-same",
    "overlay-underlay-cross",
    "overlay-underlay-same",
    "underlay-underlay-cross",
    "underlay-underlay-same",
    "veth",
  ]);
  for (
    const [kind, f] of Object.entries(doc.paths) as [string, { rttUs: number; gbps: number }][]
  ) {
    assert.ok(f.rttUs > 0 && f.gbps > 0, `${kind}: ${JSON.stringify(f)}`);
  }
  for (const k of ["syncMs", "resyncMs", "vxlanRouterSyncMs"]) {
    assert.ok(typeof doc[k] === "number" && doc[k] > 0, `${k}: ${doc[k]}`);
  }
  assert.equal(doc.nodes, 50);
});
