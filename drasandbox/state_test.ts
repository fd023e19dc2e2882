/** The shared state folder: round trips, damaged files, names that are no ids. */

import assert from "node:assert/strict";
import { withTempDir } from "../tests/helpers/netns.ts";
import {
  CLAIM_KIND,
  claimsOfPod,
  listClaims,
  loadClaim,
  loadSandbox,
  type PreparedClaim,
  removeClaim,
  SANDBOX_KIND,
  saveClaim,
  saveSandbox,
  stateDirs,
} from "./state.ts";

const claim = (uid: string, pod: string): PreparedClaim => ({
  kind: CLAIM_KIND,
  claim: { namespace: "ns", name: `c-${uid}`, uid },
  pods: [{ namespace: "ns", name: "p", uid: pod }],
  devices: [],
  preparedAt: "2026-01-01T00:00:00Z",
});

Deno.test("state: claims and sandboxes round trip; damage reads as absent; ids are checked", () =>
  withTempDir(async (dir) => {
    const d = stateDirs(`${dir}/dra`);
    assert.equal((await Deno.stat(d.root)).mode! & 0o777, 0o700);
    saveClaim(d, claim("u1", "pod-a"));
    saveClaim(d, claim("u2", "pod-b"));
    assert.equal((await Deno.stat(`${d.claims}/u1.json`)).mode! & 0o777, 0o600);
    assert.deepEqual(loadClaim(d, "u1"), claim("u1", "pod-a"));
    assert.deepEqual(claimsOfPod(d, "pod-b").map((c) => c.claim.uid), ["u2"]);
    await Deno.writeTextFile(`${d.claims}/u3.json`, '{"kind": "hydraDraClaimV1", "claim": {');
    await Deno.writeTextFile(`${d.claims}/u4.json`, '{"kind": "somethingElse"}');
    assert.equal(loadClaim(d, "u3"), undefined);
    assert.deepEqual(listClaims(d).map((c) => c.claim.uid), ["u1", "u2"]);
    assert.ok(removeClaim(d, "u1"));
    assert.ok(!removeClaim(d, "u1"));
    for (const bad of ["../x", "a/b", "", ".hidden", "x".repeat(200)]) {
      assert.throws(() => loadClaim(d, bad), /refusing/);
    }
    saveSandbox(d, {
      kind: SANDBOX_KIND,
      sandboxId: "abc123",
      pod: { namespace: "ns", name: "p", uid: "pod-a" },
      netns: "/var/run/netns/x",
      nics: [],
      reports: [],
      phase: "attaching",
      updatedAt: "",
    });
    const rec = loadSandbox(d, "abc123")!;
    assert.equal(rec.phase, "attaching");
    assert.notEqual(rec.updatedAt, "");
    // No temporary files left behind.
    const names = [...Deno.readDirSync(d.claims)].map((e) => e.name).sort();
    assert.deepEqual(names, ["u2.json", "u3.json", "u4.json"]);
  }));
