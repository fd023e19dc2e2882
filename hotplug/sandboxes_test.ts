import assert from "node:assert/strict";
import { sandboxTable } from "./sandboxes.ts";

const pod = (uid: string) => ({ namespace: "ns", name: "p", uid });

Deno.test("sandbox table: what NRI told, and only namespaces that exist", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const ns1 = `${tmp}/ns1`;
    const ns2 = `${tmp}/ns2`;
    await Deno.writeTextFile(ns1, "");
    await Deno.writeTextFile(ns2, "");
    const t = sandboxTable();
    assert.equal(await t.find(pod("u1")), undefined);
    t.started({ id: "s1", uid: "u1", netns: ns1 });
    t.started({ id: "h1", uid: "u2" });
    assert.deepEqual(await t.find(pod("u1")), { id: "s1", netns: ns1 });
    assert.equal(await t.find(pod("u2")), undefined, "host network");
    // A new sandbox of the pod replaces the old one; the old one's stop forgets nothing new.
    t.started({ id: "s2", uid: "u1", netns: ns2 });
    t.stopped("s1");
    assert.deepEqual(await t.find(pod("u1")), { id: "s2", netns: ns2 });
    await Deno.remove(ns2);
    assert.equal(await t.find(pod("u1")), undefined, "namespace gone");
    t.listed([{ id: "s3", uid: "u3", netns: ns1 }]);
    assert.deepEqual(await t.find(pod("u3")), { id: "s3", netns: ns1 });
    t.stopped("s3");
    assert.equal(await t.find(pod("u3")), undefined);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
