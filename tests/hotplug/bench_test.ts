/**
 * The hot-plug benchmark's checks, small: bench/hotplug.ts with a few
 * changes in the meta setup must finish (it fails when net2 does not come
 * with an address reserved on its network, does not go with its address
 * released, or the pod's network-status does not settle) and print the JSON
 * the issue asks for. The full run (100 changes, both setups) is
 * `deno task bench`.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../cni/helpers.ts";

Deno.test("bench/hotplug: a short run passes its checks and prints its JSON", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-prompt",
      `${REPO_ROOT}/bench/hotplug.ts`,
      "--changes",
      "3",
      "--setup",
      "meta",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(doc.changes, 3);
  assert.equal(doc.setup, "meta");
  for (const key of ["attachMs", "detachMs"]) {
    assert.deepEqual(Object.keys(doc[key]).sort(), ["p50", "p99"]);
    assert.ok(doc[key].p50 > 0 && doc[key].p50 <= doc[key].p99, JSON.stringify(doc));
  }
  assert.equal(doc.loadAverage.before.length, 3);
});
