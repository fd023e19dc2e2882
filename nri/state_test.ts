import assert from "node:assert/strict";
import { withTempDir } from "../tests/helpers/netns.ts";
import {
  listPodStateIds,
  loadPodState,
  POD_STATE_KIND,
  type PodState,
  podStateDir,
  removePodState,
  savePodState,
  sweepPodStateDir,
} from "./state.ts";

function state(sandboxId: string): PodState {
  return {
    kind: POD_STATE_KIND,
    sandboxId,
    pod: { namespace: "ns", name: "p", uid: "u" },
    netns: "/var/run/netns/x",
    ifName: "net1",
    networks: [],
    attachedAt: "2026-01-01T00:00:00Z",
  };
}

const files = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("a pod state temp file a kill left goes with its sandbox's release, or at start once old", async () => {
  await withTempDir((cacheDir) => {
    savePodState(cacheDir, state("aaa"));
    savePodState(cacheDir, state("bbb"));
    const dir = podStateDir(cacheDir);
    assert.deepEqual(files(dir), ["aaa.json", "bbb.json"], "no temp file after a write");
    // What a kill between the write and the rename leaves (both names this plugin has used).
    Deno.writeTextFileSync(`${dir}/.aaa.json.tmp-41-x1`, "{");
    Deno.writeTextFileSync(`${dir}/.aaa.tmp-42`, "{");
    Deno.writeTextFileSync(`${dir}/.bbb.json.tmp-43-y2`, "{");
    Deno.writeTextFileSync(`${dir}/.ccc.json.tmp-44-z3`, "{");
    assert.deepEqual(listPodStateIds(cacheDir), ["aaa", "bbb"]);
    assert.equal(removePodState(cacheDir, "aaa"), true);
    assert.deepEqual(files(dir), [".bbb.json.tmp-43-y2", ".ccc.json.tmp-44-z3", "bbb.json"]);
    // At start: only what is older than a minute (a writer renames its file within ms).
    const old = new Date(Date.now() - 120_000);
    Deno.utimeSync(`${dir}/.ccc.json.tmp-44-z3`, old, old);
    assert.deepEqual(sweepPodStateDir(cacheDir), [".ccc.json.tmp-44-z3"]);
    assert.deepEqual(files(dir), [".bbb.json.tmp-43-y2", "bbb.json"]);
    assert.equal(loadPodState(cacheDir, "bbb")?.sandboxId, "bbb");
    return Promise.resolve();
  });
});
