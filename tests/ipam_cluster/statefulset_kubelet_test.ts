/**
 * Sticky StatefulSet addresses with every part real: kube-controller-manager
 * makes the StatefulSet's pod, kube-scheduler places it, a kubelet runs it
 * through containerd, whose CNI conf is the reference bridge with hydra-pool
 * as its IPAM (exec'd from CNI_PATH, as whereabouts would be). What a user
 * sees: the pod's IP (`kubectl get pod -o wide`) stays the same when the pod
 * is deleted and re-created, and when the StatefulSet is scaled to 0 and
 * back within the hold, even though another pod allocated meanwhile; once
 * the hold runs out after a scale-down, the address is free.
 *
 * Needs root and the built peers (etcd, kube-apiserver, kube-control,
 * kubelet, containerd, reference CNI plugins).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Pod } from "../../kube/objects.ts";
import { startContainerd } from "../infra/containerd.ts";
import { startKubelet } from "../infra/kubelet.ts";
import { referencePluginDir, versions } from "../infra/peers.ts";
import { uniqueName } from "../helpers/netns.ts";
import { eventually, HYDRA, metric, type PoolWorld, startPoolWorld } from "./harness.ts";

const running = (p: Pod | undefined) =>
  p?.status?.phase === "Running" && !p.metadata.deletionTimestamp && !!p.status.podIP;

async function podsOf(w: PoolWorld, app: string): Promise<Pod[]> {
  const path = `/api/v1/namespaces/${w.ns}/pods?labelSelector=app%3D${app}`;
  return (await w.client.list<Pod>(path)).items;
}

/** The running pod `name` once it is not the one of UID `not`. */
async function runningPod(w: PoolWorld, app: string, name: string, not?: string): Promise<Pod> {
  let found: Pod | undefined;
  await eventually(`${name} running`, async () => {
    found = (await podsOf(w, app)).find((p) =>
      p.metadata.name === name && p.metadata.uid !== not && running(p)
    );
    return found !== undefined;
  }, 120_000);
  return found!;
}

async function scale(
  w: PoolWorld,
  name: string,
  replicas: number,
  kind = "statefulsets",
): Promise<void> {
  await w.client.patch(`/apis/apps/v1/namespaces/${w.ns}/${kind}/${name}`, {
    spec: { replicas },
  });
}

/** The pods of `app` once exactly `n` run (and no other is left). */
async function runningCount(w: PoolWorld, app: string, n: number): Promise<Pod[]> {
  let pods: Pod[] = [];
  await eventually(`${n} ${app} pods running`, async () => {
    pods = await podsOf(w, app);
    return pods.length === n && pods.every(running);
  }, 120_000);
  return pods;
}

function template(app: string) {
  return {
    metadata: { labels: { app } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "main", image: versions().PAUSE_IMAGE, imagePullPolicy: "Never" }],
    },
  };
}

Deno.test("a StatefulSet pod run by a kubelet keeps its hydra-pool address across re-creation", async (t) => {
  const w = await startPoolWorld({ controlLoops: { scheduler: true, controllerManager: true } });
  try {
    const nodeName = uniqueName("stsnode");
    const net = w.network();
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
    const prefix = `10.248.${octet}.`;
    const confDir = join(w.dir, "net.d");
    const binDir = join(w.dir, "cni-bin");
    await Deno.mkdir(confDir);
    await Deno.mkdir(binDir);
    await Deno.symlink(HYDRA, join(binDir, "hydra-pool"));
    await Deno.writeTextFile(
      join(confDir, "10-pool.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "pool",
        plugins: [{
          type: "bridge",
          bridge: uniqueName("hysb"),
          isGateway: true,
          ipam: {
            type: "hydra-pool",
            range: `${prefix}0/24`,
            gateway: `${prefix}1`,
            network_name: net,
            kubeconfig: w.kubeconfig,
            daemonSocket: "",
            nodeName,
          },
        }],
      }),
    );
    const ctd = await startContainerd({
      cniConfDir: confDir,
      cniBinDirs: [referencePluginDir(), binDir],
    });
    try {
      const kubelet = await startKubelet(w.cp, ctd, { nodeName });
      try {
        // Holds for 120 s once the StatefulSet no longer wants an ordinal.
        const controller = await w.startController([
          "--grace",
          "0",
          "--interval",
          "2",
          "--sts-hold",
          "120",
        ]);
        // Another workload's pod takes an address first and gives it up: when db-0 is
        // re-created, a free address lies below its own, so only stickiness gives it the same.
        await w.client.create(`/apis/apps/v1/namespaces/${w.ns}/deployments`, {
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "other" },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: "other" } },
            template: template("other"),
          },
        });
        await runningCount(w, "other", 1);
        await w.client.create(`/apis/apps/v1/namespaces/${w.ns}/statefulsets`, {
          apiVersion: "apps/v1",
          kind: "StatefulSet",
          metadata: { name: "db" },
          spec: {
            replicas: 1,
            serviceName: "db",
            selector: { matchLabels: { app: "db" } },
            template: template("db"),
          },
        });
        const first = await runningPod(w, "db", "db-0");
        const ip = first.status!.podIP!;
        assert.ok(ip.startsWith(prefix), `db-0's IP ${ip} is from the pool`);
        assert.equal(first.spec?.nodeName, nodeName);
        await scale(w, "other", 0, "deployments");
        await eventually(
          "the other pod's address is free",
          async () => (await w.allocations(net)).length === 1,
          120_000,
        );

        await t.step("deleted, re-created by the StatefulSet: the same IP", async () => {
          await w.client.delete(`/api/v1/namespaces/${w.ns}/pods/db-0`);
          const second = await runningPod(w, "db", "db-0", first.metadata.uid);
          assert.equal(second.status?.podIP, ip);
          const rec = (await w.allocations(net)).filter((a) => a.pod === `${w.ns}/db-0`);
          assert.deepEqual(rec.map((a) => [a.ip, a.podUID]), [[ip, second.metadata.uid]]);
        });

        await t.step(
          "scaled to 0 and back within the hold: other pods allocate meanwhile, db-0 gets its IP back",
          async () => {
            const before = (await podsOf(w, "db"))[0];
            await scale(w, "db", 0);
            await eventually(
              "db-0 gone",
              async () => (await podsOf(w, "db")).length === 0,
              120_000,
            );
            await eventually(
              "its address held",
              async () =>
                (await w.allocations(net)).find((a) => a.ip === ip)?.unwantedSince !== undefined,
              60_000,
            );
            await scale(w, "other", 2, "deployments");
            const others = await runningCount(w, "other", 2);
            assert.ok(
              others.every((p) => p.status?.podIP !== ip),
              `the held address is not handed out: ${others.map((p) => p.status?.podIP)}`,
            );
            await scale(w, "db", 1);
            const back = await runningPod(w, "db", "db-0", before.metadata.uid);
            assert.equal(back.status?.podIP, ip);
          },
        );

        await t.step(
          "scaled down for good: the address is freed once the hold runs out",
          async () => {
            await scale(w, "db", 0);
            await eventually(
              "db-0 gone",
              async () => (await podsOf(w, "db")).length === 0,
              120_000,
            );
            await controller.stop();
            const short = await w.startController([
              "--grace",
              "0",
              "--interval",
              "2",
              "--sts-hold",
              "3",
              "--lease",
              "short",
            ]);
            await eventually(
              "the address is free",
              async () => !(await w.allocations(net)).some((a) => a.ip === ip),
              60_000,
            );
            const reclaimed = metric(await short.metrics(), "hydra_ipam_reclaimed_total");
            assert.ok(reclaimed >= 1, `reclaimed ${reclaimed}`);
            await short.stop();
          },
        );
      } finally {
        await kubelet.stop();
      }
    } finally {
      await ctd.stop();
    }
  } finally {
    await w.close();
  }
});
