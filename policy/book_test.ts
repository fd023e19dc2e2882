import assert from "node:assert/strict";
import { withTempDir } from "../tests/helpers/netns.ts";
import { openPolicyBook } from "./book.ts";
import type { MultiNetworkPolicy } from "./spec.ts";

function mnp(rv: string, spec: unknown, uid = "u1"): MultiNetworkPolicy {
  return {
    metadata: {
      name: "p",
      namespace: "ns1",
      uid,
      resourceVersion: rv,
      annotations: { "k8s.v1.cni.cncf.io/policy-for": "blue" },
    },
    spec,
  };
}

const GOOD = { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] };
const BAD = { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] };

Deno.test("book: valid, last good (kept on disk across a reopen), fail closed, removed", async () => {
  await withTempDir(async (dir) => {
    const book = await openPolicyBook({ stateDir: dir });
    assert.equal(book.update(mnp("1", GOOD)).state, "valid");
    const kept = book.update(mnp("2", BAD));
    assert.equal(kept.state, "last_good");
    assert.equal(kept.inForce, "1");
    assert.deepEqual(kept.effective.ingress?.[0].ports, [{ protocol: "tcp", port: 80 }]);
    await book.flush();

    const reopened = await openPolicyBook({ stateDir: dir });
    assert.equal(reopened.update(mnp("2", BAD)).state, "last_good", "the kept version survives");
    const other = reopened.update(mnp("5", BAD, "u2"));
    assert.equal(other.state, "fail_closed");
    assert.deepEqual(other.effective.ingress, []);
    assert.equal(other.effective.failClosed, true);
    reopened.remove(mnp("2", BAD));
    await reopened.flush();
    const third = await openPolicyBook({ stateDir: dir });
    assert.equal(third.update(mnp("3", BAD)).state, "fail_closed", "deleted: forgotten");
  });
});

Deno.test("book: a damaged state file is ignored; prune drops versions of objects gone", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/last-good.json`, '{"kind": "hydraPolicyLastGoodV1", "poli');
    const book = await openPolicyBook({ stateDir: dir });
    assert.equal(book.update(mnp("1", BAD)).state, "fail_closed");
    book.update(mnp("1", GOOD, "u9"));
    await book.flush();
    const again = await openPolicyBook({ stateDir: dir });
    again.prune();
    await again.flush();
    const text = await Deno.readTextFile(`${dir}/last-good.json`);
    assert.doesNotMatch(text, /u9/);
  });
});
