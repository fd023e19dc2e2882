/**
 * The DRA benchmark, short: a few pods of each kind through the same code
 * `deno task bench` runs, so the benchmark cannot rot. Its document has
 * the documented shape and every claimed pod held its NIC (the run checks
 * that and throws otherwise). Figures are not judged here (bench/ does).
 */

import assert from "node:assert/strict";
import { runDraBench } from "../../bench/dra_lib.ts";

Deno.test("dra bench: a short run gives the documented JSON", async () => {
  const doc = await runDraBench({ pods: 2, warmup: 0, nics: 1 });
  assert.deepEqual(Object.keys(doc).sort(), ["claimedMs", "plainMs", "pods", "rssMiB"]);
  assert.equal(doc.pods, 2);
  for (const k of ["claimedMs", "plainMs"] as const) {
    assert.deepEqual(Object.keys(doc[k]).sort(), ["p50", "p99"]);
    assert.ok(doc[k].p50 > 0 && doc[k].p99 >= doc[k].p50, `${k}: ${JSON.stringify(doc[k])}`);
  }
  assert.ok(doc.rssMiB > 10, `rssMiB ${doc.rssMiB}`);
});
