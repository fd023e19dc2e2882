/**
 * Kubernetes mode end to end against a real kube-apiserver, with the
 * meta-CNI exec'd in a node namespace as a runtime would, asking the API
 * server itself, through the node daemon, and handing whole invocations to
 * the daemon (`daemonExec`): every form of the
 * `k8s.v1.cni.cncf.io/networks` annotation (comma list, JSON with
 * interface, ips, mac, default-route, cni-args, portMappings, bandwidth),
 * the older `networks` annotation with a Network object, and a pod with no
 * selection. The network-status written on the pod is checked against the
 * interfaces, addresses, MACs and routes the kernel has in the pod.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { addresses, type IpAddr, links } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "./harness.ts";
import type { Pod } from "../../kube/objects.ts";

type Status = {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
  gateway?: string[];
};

/** Bare addresses of an interface as the kernel has them (global scope). */
function bare(link: IpAddr | undefined): string[] {
  return addresses(link).map((a) => a.split("/")[0]).sort();
}

/** Checks every network-status entry against the pod namespace's kernel state. */
async function assertStatusMatchesKernel(netns: TestNetns, status: Status[]) {
  const kernel = await links(netns);
  for (const entry of status) {
    const link = kernel.get(entry.interface ?? "");
    assert.ok(link, `network-status names ${entry.interface}, the pod has ${[...kernel.keys()]}`);
    assert.deepEqual([...(entry.ips ?? [])].sort(), bare(link), `addresses of ${entry.interface}`);
    assert.equal(entry.mac, link.address, `MAC of ${entry.interface}`);
  }
}

async function defaultRoutes(netns: TestNetns): Promise<{ gateway?: string; dev: string }[]> {
  return await netns.ipJson("-4", "route", "show", "default");
}

/** Waits for the pod's status to list `count` networks (the daemon writes it in the background). */
async function statusOf(env: KubeEnv, pod: Pod, count: number): Promise<Status[]> {
  let status: Status[] = [];
  await eventually(`network-status of ${pod.metadata.name} with ${count} entries`, async () => {
    status = networkStatus(await env.getPod(pod.metadata.namespace, pod.metadata.name)) as Status[];
    return status.length === count;
  });
  return status;
}

async function onlyLoopback(netns: TestNetns): Promise<boolean> {
  return [...(await links(netns)).keys()].every((n) => n === "lo");
}

Deno.test("Kubernetes mode: every selection form, network-status as the kernel has it", async (t) => {
  const env = await startKubeEnv();
  try {
    const cluster = env.bridgeNet("cluster", { isGateway: true, isDefaultGateway: true });
    await Deno.writeTextFile(`${env.confDir}/10-cluster.conf`, JSON.stringify(cluster.conf));
    const blue = env.bridgeNet("blue-net");
    const green = env.bridgeNet("green-net");
    const red = env.bridgeNet("red-net", { isGateway: true });
    await env.nad(env.ns, "blue", blue.conf);
    await env.nad(env.ns, "green", green.conf);
    await env.nad(env.other, "red", red.conf);
    const legacy = env.bridgeNet("legacynet");
    const { name: _n, type: _t, cniVersion: _v, ...legacyArgs } = legacy.conf;
    await env.cp.api.must(
      "POST",
      `/apis/kubernetes-network.cni.cncf.io/v1/namespaces/${env.ns}/networks`,
      {
        apiVersion: "kubernetes-network.cni.cncf.io/v1",
        kind: "Network",
        metadata: { name: "legacynet", namespace: env.ns },
        plugin: "bridge",
        args: JSON.stringify([legacyArgs]),
      },
    );

    for (const mode of ["direct", "daemon", "daemonExec"] as const) {
      const daemon = mode !== "direct" ? await env.startDaemon() : undefined;
      const conf = env.metaConf({
        clusterNetwork: "cluster",
        ...(daemon ? { daemonSocket: daemon.socket } : {}),
        ...(mode === "daemonExec" ? { daemonExec: true } : {}),
      });
      const id = { direct: "a", daemon: "d", daemonExec: "x" }[mode];

      await t.step(`${mode}: comma list with namespace/name and name@ifname`, async () => {
        const pod = await env.createPod(`comma-${id}`, {
          "k8s.v1.cni.cncf.io/networks": ` blue, ${env.other}/red ,green@data0`,
        });
        const netns = await env.podNetns();
        const call = { netns, pod: { ...pod.metadata, uid: pod.metadata.uid } };
        const add = await env.cni("ADD", conf, call);
        assert.equal(add.code, 0, add.stdout + add.stderr);
        // The result is the default network's.
        const ips = (add.json!.ips as { address: string }[]).map((i) => i.address);
        assert.equal(ips.length, 1);
        assert.ok(ips[0].startsWith(`${cluster.subnet}.`), ips[0]);
        const kernel = await links(netns);
        assert.deepEqual(
          ["data0", "eth0", "lo", "net1", "net2"],
          [...kernel.keys()].sort(),
        );
        assert.ok(bare(kernel.get("net1"))[0].startsWith(`${blue.subnet}.`));
        assert.ok(bare(kernel.get("net2"))[0].startsWith(`${red.subnet}.`));
        assert.ok(bare(kernel.get("data0"))[0].startsWith(`${green.subnet}.`));

        const status = await statusOf(env, pod, 4);
        assert.deepEqual(status.map((s) => [s.name, s.interface, s.default ?? false]), [
          ["cluster", "eth0", true],
          [`${env.ns}/blue`, "net1", false],
          [`${env.other}/red`, "net2", false],
          [`${env.ns}/green`, "data0", false],
        ]);
        await assertStatusMatchesKernel(netns, status);
        const stored = await env.getPod(env.ns, pod.metadata.name);
        const blueResult = JSON.parse(
          stored!.metadata.annotations![`hydra.clusternet.io.${env.ns}/blue`],
        );
        assert.deepEqual(
          blueResult.ips.map((i: { address: string }) => i.address.split("/")[0]),
          bare(kernel.get("net1")),
        );
        assert.equal(stored!.metadata.annotations!["hydra.clusternet.io.cluster"], undefined);

        const del = await env.cni("DEL", conf, call);
        assert.equal(del.code, 0, del.stdout + del.stderr);
        assert.ok(await onlyLoopback(netns), "interfaces left after DEL");
      });

      await t.step(
        `${mode}: JSON selections with interface, ips, mac, default-route, cni-args, capabilities`,
        async () => {
          const selections = [
            {
              name: "blue",
              interface: "ext1",
              ips: [`${blue.subnet}.50`],
              mac: "02:11:22:33:44:55",
            },
            { name: "red", namespace: env.other, "default-route": [`${red.subnet}.1`] },
            {
              name: "green",
              "cni-args": { flavour: "mint" },
              portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
              bandwidth: {
                ingressRate: 1000,
                ingressBurst: 2000,
                egressRate: 3000,
                egressBurst: 4000,
              },
            },
          ];
          const pod = await env.createPod(`json-${id}`, {
            "k8s.v1.cni.cncf.io/networks": JSON.stringify(selections),
          });
          const netns = await env.podNetns();
          const containerId = `json-${id}-${netns.name}`;
          const call = { netns, containerId, pod: { ...pod.metadata, uid: pod.metadata.uid } };
          const add = await env.cni("ADD", conf, call);
          assert.equal(add.code, 0, add.stdout + add.stderr);
          const kernel = await links(netns);
          assert.deepEqual(bare(kernel.get("ext1")), [`${blue.subnet}.50`]);
          assert.equal(kernel.get("ext1")!.address, "02:11:22:33:44:55");
          // default-route: the only default route is via red's gateway on red's interface.
          const routes = (await defaultRoutes(netns)).map((r) => ({
            gateway: r.gateway,
            dev: r.dev,
          }));
          assert.deepEqual(routes, [{ gateway: `${red.subnet}.1`, dev: "net2" }]);

          const status = await statusOf(env, pod, 4);
          await assertStatusMatchesKernel(netns, status);
          const byName = new Map(status.map((s) => [s.name, s]));
          assert.deepEqual(byName.get(`${env.other}/red`)!.gateway, [`${red.subnet}.1`]);
          assert.equal(byName.get("cluster")!.gateway, undefined, "cluster lost its default route");

          // cni-args reach the plugin config; capabilities become that delegate's runtimeConfig.
          const record = JSON.parse(
            await Deno.readTextFile(`${env.cacheDir}/attachments/${containerId}-eth0`),
          );
          const greenRec = record.delegates.find((d: { network: string }) =>
            d.network === `${env.ns}/green`
          );
          assert.equal(greenRec.config.plugins[0].args.cni.flavour, "mint");
          assert.deepEqual(greenRec.capabilityArgs.portMappings, selections[2].portMappings);
          assert.deepEqual(greenRec.capabilityArgs.bandwidth, selections[2].bandwidth);
          assert.ok(
            greenRec.cniArgs.some(([k, v]: string[]) =>
              k === "K8S_POD_UID" && v === pod.metadata.uid
            ),
          );

          const del = await env.cni("DEL", conf, call);
          assert.equal(del.code, 0, del.stdout + del.stderr);
          assert.ok(await onlyLoopback(netns));
        },
      );

      await t.step(`${mode}: the older networks annotation with a Network object`, async () => {
        const pod = await env.createPod(`legacy-${id}`, {
          networks: JSON.stringify([{ name: "legacynet" }]),
        });
        const netns = await env.podNetns();
        const call = { netns, pod: { ...pod.metadata, uid: pod.metadata.uid } };
        const add = await env.cni("ADD", conf, call);
        assert.equal(add.code, 0, add.stdout + add.stderr);
        const kernel = await links(netns);
        assert.ok(bare(kernel.get("net1"))[0].startsWith(`${legacy.subnet}.`));
        const status = await statusOf(env, pod, 2);
        assert.equal(status[1].name, `${env.ns}/legacynet`);
        await assertStatusMatchesKernel(netns, status);
        assert.equal((await env.cni("DEL", conf, call)).code, 0);
        assert.ok(await onlyLoopback(netns));
      });

      await t.step(`${mode}: no selection gives the default network alone`, async () => {
        const pod = await env.createPod(`plain-${id}`);
        const netns = await env.podNetns();
        const call = { netns, pod: { ...pod.metadata, uid: pod.metadata.uid } };
        const add = await env.cni("ADD", conf, call);
        assert.equal(add.code, 0, add.stdout + add.stderr);
        const status = await statusOf(env, pod, 1);
        assert.equal(status[0].name, "cluster");
        assert.equal(status[0].default, true);
        await assertStatusMatchesKernel(netns, status);
        assert.equal((await env.cni("DEL", conf, call)).code, 0);
      });

      if (mode === "daemonExec") {
        await t.step("daemonExec: the invocations ran inside the daemon", async () => {
          const metrics = await daemon!.metrics();
          assert.match(metrics, /hydra_daemon_requests_total\{op="cni",result="ok"\} [1-9]/);
          // Their reads and reports went to the daemon's caches and queue, not over its socket.
          assert.match(metrics, /hydra_daemon_reads_total\{source="cache"\} [1-9]/);
          assert.match(metrics, /hydra_daemon_reports_total\{outcome="written"\} [1-9]/);
          assert.doesNotMatch(metrics, /hydra_daemon_requests_total\{op="(get|report)"/);
        });
      }
      if (mode === "daemon") {
        await t.step(
          "daemon: reads came from its caches (older Network objects: the API)",
          async () => {
            const metrics = await daemon!.metrics();
            assert.match(metrics, /hydra_daemon_reads_total\{source="cache"\} \d+/);
            // The only object it does not cache is the seed's Network, read once above.
            assert.match(metrics, /hydra_daemon_reads_total\{source="api"\} 1\n/);
            assert.match(metrics, /hydra_daemon_reports_total\{outcome="written"\} [1-9]/);
          },
        );
      }
      if (daemon) assert.equal(await daemon.stop(), 0);
    }
  } finally {
    await env.close();
  }
});
