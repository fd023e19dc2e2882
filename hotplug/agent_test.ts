import assert from "node:assert/strict";
import type { KubeClient } from "../kube/client.ts";
import type { Pod } from "../kube/objects.ts";
import { createLogger } from "../pkg/log.ts";
import { createHotplugAgent } from "./agent.ts";
import { HOTPLUG_ANNOTATION, type SandboxFinder } from "./options.ts";

/** A client that must not be used: the passes below stop before any API call. */
const unused = new Proxy({}, {
  get: () => () => Promise.reject(new Error("no API call expected")),
}) as KubeClient;

function pod(uid: string, annotations: Record<string, string>, extra: Partial<Pod> = {}): Pod {
  return {
    metadata: { name: uid, namespace: "ns", uid, annotations },
    ...extra,
  };
}

/** A runtime that never has a sandbox, counting the pods it is asked about. */
function noSandboxes(): SandboxFinder & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    find(p) {
      asked.push(p.uid);
      return Promise.resolve(undefined);
    },
  };
}

function agentWith(finder: SandboxFinder, tmp: string) {
  return createHotplugAgent({
    kind: "meta",
    cacheDir: tmp,
    sandboxes: finder,
    reads: unused,
    writes: unused,
    log: createLogger({ level: "off" }),
    retry: { initialMs: 10, maxMs: 20, jitter: 0 },
  });
}

Deno.test("agent: only pods that accept hot plug, and are not going, are looked at", async () => {
  const tmp = await Deno.makeTempDir();
  const finder = noSandboxes();
  const agent = agentWith(finder, tmp);
  try {
    const on = { [HOTPLUG_ANNOTATION]: "true", "k8s.v1.cni.cncf.io/networks": "blue" };
    agent.podChanged(pod("plain", { "k8s.v1.cni.cncf.io/networks": "blue" }));
    agent.podChanged(pod("no", { ...on, [HOTPLUG_ANNOTATION]: "false" }));
    agent.podChanged(pod("host", on, { spec: { hostNetwork: true } }));
    const going = pod("going", on);
    going.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    agent.podChanged(going);
    agent.podChanged(pod("yes", on));
    await agent.idle(1_000);
    // Without a sandbox a pod is looked at a few more times, then waits for its next change.
    assert.ok(finder.asked.every((u) => u === "yes"), finder.asked.join(","));
    assert.equal(finder.asked.length, 7);
    agent.podChanged(pod("yes", on));
    await agent.idle(1_000);
    assert.equal(finder.asked.length, 8, "an event of a pod still waiting: one more look");
    agent.podChanged(pod("yes", { ...on, "k8s.v1.cni.cncf.io/networks": "blue,green" }));
    await agent.idle(1_000);
    assert.equal(finder.asked.length, 15, "a change: a few more");
    agent.podDeleted(pod("yes", on));
    agent.resync();
    await agent.idle(1_000);
    assert.equal(finder.asked.length, 15, "a deleted pod is forgotten");
  } finally {
    await agent.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("agent: an annotation that does not parse changes nothing and is told once", async () => {
  const tmp = await Deno.makeTempDir();
  const finder = noSandboxes();
  const events: string[] = [];
  const writes = {
    ...unused,
    create(_path: string, body: unknown) {
      events.push((body as { reason: string }).reason);
      return Promise.resolve(body);
    },
  } as unknown as KubeClient;
  const agent = createHotplugAgent({
    kind: "meta",
    cacheDir: tmp,
    sandboxes: finder,
    reads: unused,
    writes,
    log: createLogger({ level: "off" }),
  });
  try {
    const bad = { [HOTPLUG_ANNOTATION]: "true", "k8s.v1.cni.cncf.io/networks": "a/b/c" };
    agent.podChanged(pod("p", bad));
    await agent.idle();
    agent.podChanged(pod("p", { ...bad, other: "x" }));
    await agent.idle();
    assert.deepEqual(events, ["InvalidNetworkSelection"]);
    assert.deepEqual(finder.asked, [], "the runtime is not even asked");
  } finally {
    await agent.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
