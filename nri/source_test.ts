import assert from "node:assert/strict";
import { CniError } from "../cni/errors.ts";
import { buildPluginConfig } from "../cni/list.ts";
import type { NetworkPlan } from "../engine/attach.ts";
import { create } from "@bufbuild/protobuf";
import { type PodSandbox, PodSandboxSchema } from "./pod.ts";
import { confDirSource, kubeSource } from "./source.ts";

/** What each plugin of a planned network is handed on ADD (cni/list.ts builds it). */
function pluginConfigs(n: NetworkPlan): Record<string, unknown>[] {
  return n.list.plugins.map((p) =>
    buildPluginConfig(n.list, p, "ADD", undefined, n.capabilityArgs)
  );
}

function pod(annotations: Record<string, string>): PodSandbox {
  return create(PodSandboxSchema, {
    id: "a".repeat(64),
    name: "web",
    uid: "u-1",
    namespace: "apps",
    annotations,
    pid: 1,
  });
}

async function withConfDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-nri-src-" });
  try {
    await Deno.writeTextFile(
      `${dir}/10-blue.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "blue",
        plugins: [
          {
            type: "hydra-bridge",
            bridge: "b0",
            ipam: { type: "hydra-ipam", subnet: "10.1.0.0/24" },
          },
          { type: "portmap", capabilities: { portMappings: true } },
        ],
      }),
    );
    await Deno.writeTextFile(
      `${dir}/20-red.conf`,
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "red",
        type: "hydra-macvlan",
        master: "eth9",
        capabilities: { ips: true, mac: true },
        ipam: { type: "hydra-static" },
      }),
    );
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("conf-dir source: no selection, no plan", async () => {
  await withConfDir(async (dir) => {
    assert.equal(await confDirSource(dir).plan(pod({})), undefined);
    assert.equal(
      await confDirSource(dir).plan(pod({ "k8s.v1.cni.cncf.io/networks": "" })),
      undefined,
    );
  });
});

Deno.test("conf-dir source: short form names networks; first gets CNI_IFNAME, others name theirs", async () => {
  await withConfDir(async (dir) => {
    const plan = await confDirSource(dir).plan(
      pod({ "k8s.v1.cni.cncf.io/networks": "blue, other-ns/red@data0" }),
    );
    assert.ok(plan);
    assert.equal(plan.ifName, "net1");
    assert.deepEqual(plan.networks?.map((n) => ({ name: n.name, ifName: n.ifName })), [
      { name: "blue", ifName: "net1" },
      { name: "red", ifName: "data0" },
    ]);
    assert.equal(plan.conf.type, "hydra");
    assert.equal(plan.conf.delegates, undefined, "the networks are handed over, not in the conf");
    const [blue] = plan.networks!;
    assert.equal(blue.list.cniVersion, "1.0.0");
    assert.equal(blue.list.plugins.length, 2);
  });
});

Deno.test("conf-dir source: JSON form's ips, mac and cni-args reach the plugins that take them", async () => {
  await withConfDir(async (dir) => {
    const plan = await confDirSource(dir).plan(pod({
      "k8s.v1.cni.cncf.io/networks": JSON.stringify([
        { name: "blue", "cni-args": { vlan: 7 } },
        { name: "red", ips: ["10.9.0.5/24"], mac: "02:00:00:00:00:05" },
      ]),
    }));
    assert.ok(plan);
    const [blue, red] = plan.networks!.map(pluginConfigs);
    for (const p of blue) assert.deepEqual((p.args as { cni: unknown }).cni, { vlan: 7 });
    assert.equal(blue[1].runtimeConfig, undefined, "portmap gets no ports it was not given");
    assert.deepEqual(red[0].runtimeConfig, {
      ips: ["10.9.0.5/24"],
      mac: "02:00:00:00:00:05",
    });
  });
});

Deno.test("conf-dir source: unknown networks and clashing interfaces are refused by name", async () => {
  await withConfDir(async (dir) => {
    const source = confDirSource(dir);
    await assert.rejects(
      source.plan(pod({ "k8s.v1.cni.cncf.io/networks": "green" })),
      (err) => err instanceof CniError && err.code === 7 && /"green"/.test(err.message),
    );
    await assert.rejects(
      source.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue@x,red@x" })),
      /networks "blue" and "red" both ask for interface "x"/,
    );
    await assert.rejects(
      source.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue@eth0" })),
      /belongs to the pod's default network/,
    );
    await assert.rejects(
      source.plan(pod({ "k8s.v1.cni.cncf.io/networks": "Not_A_Name" })),
      (err) => err instanceof CniError && err.code === 7,
    );
  });
});

Deno.test("kubernetes source: no selection and no defaultNetworks, no plan; else skipDefaultNetwork", async () => {
  const bare = kubeSource({ apiTimeoutS: 1, confDir: "/nonexistent" });
  assert.equal(await bare.plan(pod({})), undefined);
  const src = kubeSource({
    kubeconfig: "/k.conf",
    defaultNetworks: ["base"],
    apiTimeoutS: 1,
    confDir: "/nonexistent",
  });
  const plan = await src.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue,other/red@fast" }));
  // The engine resolves and names the networks; the attach is recorded under the first's.
  assert.equal(plan?.networks, undefined);
  assert.equal(plan?.ifName, "net1");
  assert.equal(plan?.conf.skipDefaultNetwork, true);
  assert.equal(plan?.conf.kubeconfig, "/k.conf");
  assert.equal(plan?.conf.apiTimeout, 1);
  assert.deepEqual(plan?.conf.defaultNetworks, ["base"]);
  const system = await src.plan({ ...pod({}), namespace: "kube-system" });
  assert.equal(system, undefined, "kube-system pods get no defaultNetworks");
  const own = await bare.plan(pod({ "k8s.v1.cni.cncf.io/networks": "other/red@fast,blue" }));
  assert.equal(own?.ifName, "fast", "without defaultNetworks the first selection's interface");
  await assert.rejects(
    bare.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue@x,red@x" })),
    /networks "blue" and "red" both ask for interface "x"/,
  );
});

Deno.test("namespace isolation: a pod selects networks of its own and the global namespaces only", async () => {
  await withConfDir(async (dir) => {
    const rules = { namespaceIsolation: true, globalNamespaces: ["default"] };
    const source = confDirSource(dir, rules);
    await assert.rejects(
      source.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue,other-ns/red" })),
      (err) =>
        err instanceof CniError && err.code === 7 &&
        /element 2: namespace isolation is on: pod in namespace "apps" may not use network "other-ns\/red"/
          .test(err.message),
    );
    const ok = await source.plan(
      pod({ "k8s.v1.cni.cncf.io/networks": "blue,default/red,apps/red@r2" }),
    );
    assert.deepEqual(ok?.networks?.map((n) => n.ifName), ["net1", "net2", "r2"]);
    // Without isolation (the default) the namespace of an element is not looked at.
    assert.ok(
      await confDirSource(dir).plan(pod({ "k8s.v1.cni.cncf.io/networks": "other-ns/red" })),
    );
  });
  const kube = kubeSource({
    apiTimeoutS: 1,
    confDir: "/nonexistent",
    namespaces: { namespaceIsolation: true, globalNamespaces: ["default", "shared"] },
  });
  const plan = await kube.plan(pod({ "k8s.v1.cni.cncf.io/networks": "blue" }));
  // Kubernetes mode hands the rules to the engine, which checks every NAD the pod names.
  assert.equal(plan?.conf.namespaceIsolation, true);
  assert.equal(plan?.conf.globalNamespaces, "default,shared");
});
