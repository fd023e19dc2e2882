/**
 * The policy benchmark's correctness checks, small: bench/policy.ts with a
 * few pods and changes must finish (it fails when a pod's table does not
 * hold the changed port, or traffic disagrees with it) and print the JSON
 * the issue asks for. The full run (200 pods) is `deno task bench`.
 *
 * Needs root, libnftables and the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../cni/helpers.ts";

Deno.test("bench/policy: a short run passes its checks and prints its JSON", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-prompt",
      `${REPO_ROOT}/bench/policy.ts`,
      "--pods",
      "6",
      "--changes",
      "2",
      "--rtt",
      "50",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const doc = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(Object.keys(doc).sort(), ["applyMs", "rttUsNoPolicy", "rttUsPolicy"]);
  assert.deepEqual(Object.keys(doc.applyMs).sort(), ["p50", "p99"]);
  for (const v of [doc.applyMs.p50, doc.applyMs.p99, doc.rttUsNoPolicy, doc.rttUsPolicy]) {
    assert.ok(typeof v === "number" && v > 0, JSON.stringify(doc));
  }
  assert.ok(doc.applyMs.p50 <= doc.applyMs.p99);
});
