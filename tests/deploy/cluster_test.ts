/**
 * The manifests of deploy/ run for real: hydra's offline image (tools/image.ts)
 * imported into the test containerd, a control plane with kube-scheduler and
 * kube-controller-manager (the DaemonSet controller makes the pods), and a
 * real kubelet. One world serves every step, in the order a user goes:
 *
 * 1. `kubectl apply` of hydra-nri.yaml: the DaemonSet's pods come up and the
 *    installer puts hydra onto the node;
 * 2. a Pod with a NetworkAttachmentDefinition in its annotation runs with
 *    that network (attached by the NRI plugin of the DaemonSet);
 * 3. `kubectl apply` of hydra-dra.yaml beside it: the DRA driver registers
 *    with the kubelet and publishes the node's devices; then it is removed;
 * 4. a rolling upgrade to a new image: the running Pod keeps its network and
 *    the node never lacks its CNI conf nor hydra's executable;
 * 5. deleting the setup and running the uninstall leaves the node's CNI
 *    folders as they were;
 * 6. `helm install` of the chart (NRI node setup and router): the installer
 *    puts hydra onto the node, the router runs; `helm uninstall` and the
 *    uninstall leave the node as it was;
 * 7. hydra-meta.yaml from the same image: the installer puts a copy of Deno
 *    and hydra's tree onto the node and makes hydra the runtime's CNI, the
 *    node daemon and policy agent run, a Pod with a NetworkAttachmentDefinition
 *    gets its networks through the meta-CNI the kubelet's runtime execs; a
 *    rolling upgrade to a new image never leaves the node without the
 *    launcher, the version it names or the conf, keeps the version before
 *    and the running Pod's network; a Pod started after it runs, both are
 *    deleted through the new version; deleting the setup and running the
 *    uninstall leave the CNI folders as they were.
 *
 * The manifests are fitted to the test node (its folders, its containerd's
 * sockets, the offline image) by tests/deploy/test_node.ts.
 *
 * Needs root and the built peers (kube, kube-control, kubelet, containerd, helm).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { type Containerd, startContainerd } from "../infra/containerd.ts";
import { type Kubelet, startKubelet } from "../infra/kubelet.ts";
import { referencePluginDir, repoRoot } from "../infra/peers.ts";
import { poll } from "../infra/process.ts";
import { runHelm } from "../infra/helm.ts";
import { buildHydraImage, defaultArchive } from "../../tools/image.ts";
import { CHART_DIR } from "../../tools/helm_chart.ts";
import { uniqueName } from "../helpers/netns.ts";
import { fitToTestNode, type TestNode, toYaml } from "./test_node.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const NS = "hydra-system";
const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

interface World {
  cp: ControlPlane;
  ctd: Containerd;
  kubelet: Kubelet;
  node: TestNode;
  root: string;
  /** The image the manifests start with, and the one the upgrade moves to. */
  image: string;
  upgradeImage: string;
}

/** Every file under `dir` (relative path → type, mode and content), for before/after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(dir, rel))) {
      const path = join(rel, e.name);
      const st = await Deno.lstat(join(dir, path));
      if (e.isDirectory) {
        out[path] = `dir ${(st.mode! & 0o7777).toString(8)}`;
        await walk(path);
      } else if (e.isSymlink) {
        out[path] = `link ${await Deno.readLink(join(dir, path))}`;
      } else {
        out[path] = `file ${(st.mode! & 0o7777).toString(8)} ${await Deno.readTextFile(
          join(dir, path),
        )}`;
      }
    }
  };
  await walk("");
  return out;
}

/** The node's CNI folders (what the installer touches). */
async function cniFolders(root: string): Promise<Record<string, string>> {
  return {
    ...Object.fromEntries(
      Object.entries(await snapshot(`${root}/opt/cni/bin`)).map((
        [k, v],
      ) => [`bin/${k}`, v.slice(0, 200)]),
    ),
    ...Object.fromEntries(
      Object.entries(await snapshot(`${root}/etc/cni/net.d`)).map(([k, v]) => [`net.d/${k}`, v]),
    ),
  };
}

async function applyFitted(w: World, objects: Obj[], ...verb: string[]): Promise<string> {
  const file = join(w.root, `${uniqueName("apply")}.yaml`);
  await Deno.writeTextFile(file, toYaml(objects));
  return await w.cp.kubectl(...(verb.length ? verb : ["apply"]), "-f", file);
}

function fittedManifest(w: World, file: string): Obj[] {
  return fitToTestNode(Deno.readTextFileSync(join(repoRoot, "deploy", file)), w.node);
}

/** What the pods of a DaemonSet say, for failure messages: phases, container states, logs. */
async function podReport(w: World, selector: string, ns = NS): Promise<string> {
  const pods = await w.cp.api.must(
    "GET",
    `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
  ) as { items: Obj[] };
  const lines: string[] = [];
  for (const p of pods.items) {
    lines.push(
      `${p.metadata.name}: ${p.status?.phase} ${
        JSON.stringify(
          p.status?.containerStatuses?.map((c: Obj) => [c.name, c.ready, c.state, c.lastState]),
        )
      }`,
    );
  }
  // The kubelet keeps container logs in its own folder: <ns>_<pod>_<uid>/<container>/N.log.
  const logsDir = join(w.kubelet.dir, "pod-logs");
  for (const pod of [...Deno.readDirSync(logsDir)].filter((e) => e.name.startsWith(`${ns}_`))) {
    for (const c of Deno.readDirSync(join(logsDir, pod.name))) {
      for (const f of Deno.readDirSync(join(logsDir, pod.name, c.name))) {
        const text = Deno.readTextFileSync(join(logsDir, pod.name, c.name, f.name));
        lines.push(
          `--- ${pod.name}/${c.name}/${f.name}:\n${
            text.trimEnd().split("\n").slice(-12).join("\n")
          }`,
        );
      }
    }
  }
  const events = await w.cp.api.must("GET", "/api/v1/events") as { items: Obj[] };
  for (const e of events.items.filter((e) => e.type === "Warning").slice(-8)) {
    lines.push(`event ${e.involvedObject?.name}: ${e.reason} ${String(e.message).slice(0, 400)}`);
  }
  return lines.join("\n");
}

/** Waits until the DaemonSet's pod on the node runs `image` in every container, all ready. */
async function waitDaemonSet(w: World, name: string, image: string, ns = NS): Promise<Obj> {
  let pod: Obj | undefined;
  const selector = `app.kubernetes.io/name=${name}`;
  const ok = await poll(
    async () => {
      const pods = await w.cp.api.must(
        "GET",
        `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
      ) as { items: Obj[] };
      const live = pods.items.filter((p) => !p.metadata.deletionTimestamp);
      pod = live.length === 1 ? live[0] : undefined;
      return pod !== undefined &&
        pod.spec.containers.every((c: Obj) => c.image === image) &&
        (pod.status?.containerStatuses ?? []).length === pod.spec.containers.length &&
        pod.status.containerStatuses.every((c: Obj) => c.ready);
    },
    240_000,
    500,
  );
  assert.ok(ok, `DaemonSet ${name} not ready on ${image}:\n${await podReport(w, selector, ns)}`);
  assert.equal(pod!.spec.nodeName, w.kubelet.nodeName);
  return pod!;
}

async function withWorld(body: (w: World) => Promise<void>): Promise<void> {
  const built = await buildHydraImage();
  const root = await Deno.makeTempDir({ prefix: "hydra-deploy-" });
  const cp = await startControlPlane({ scheduler: true, controllerManager: true });
  try {
    for (const d of ["opt/cni/bin", "etc/cni/net.d"]) {
      await Deno.mkdir(`${root}/${d}`, { recursive: true });
    }
    // The node's default network, as its CNI left it: hydra in NRI mode leaves it alone.
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
    await Deno.writeTextFile(
      `${root}/etc/cni/net.d/10-default.conflist`,
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "default",
        plugins: [{
          type: "bridge",
          bridge: uniqueName("hdp"),
          isGateway: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: `10.243.${octet}.0/24` }]],
            dataDir: `${root}/default-ipam`,
          },
        }],
      }),
    );
    const ctd = await startContainerd({
      cniConfDir: `${root}/etc/cni/net.d`,
      cniBinDirs: [`${root}/opt/cni/bin`, referencePluginDir()],
    });
    try {
      await ctd.ctr("images", "import", "--local", built.path);
      // The same commit under another tag: its labels are in the tree, so on the node it is
      // another version of hydra's copy.
      const upgrade = await buildHydraImage({
        tag: `${built.tag}-upgrade`,
        out: defaultArchive().replace(/\.tar$/, "-upgrade.tar"),
      });
      await ctd.ctr("images", "import", "--local", upgrade.path);
      const upgradeImage = upgrade.tag;
      const kubelet = await startKubelet(cp, ctd);
      try {
        const api = new URL(cp.server);
        const node: TestNode = {
          root,
          nriDir: join(ctd.dir, "nri"),
          netnsDir: join(ctd.stateDir, "io.containerd.grpc.v1.cri", "netns"),
          kubeletRoot: join(kubelet.dir, "root"),
          image: built.tag,
          apiHost: api.hostname,
          apiPort: api.port,
        };
        await body({ cp, ctd, kubelet, node, root, image: built.tag, upgradeImage });
      } finally {
        await kubelet.stop();
      }
    } finally {
      await ctd.stop();
    }
  } finally {
    await cp.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** The Pod of the test: the pause image, one extra network. */
function workloadPod(image: string, nad: string): Obj {
  return {
    metadata: { name: "workload", annotations: { "k8s.v1.cni.cncf.io/networks": nad } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "main", image, imagePullPolicy: "Never" }],
    },
  };
}

/** The pod's extra interface as the pod's namespace has it (name, MAC, addresses). */
async function podInterface(
  w: World,
  ns: string,
  pod: string,
  ifname: string,
): Promise<Obj | undefined> {
  const sandboxes = JSON.parse(
    await w.ctd.crictl("pods", "--namespace", ns, "--name", pod, "-o", "json"),
  ) as { items: Obj[] };
  const ready = sandboxes.items.find((s) => s.state === "SANDBOX_READY");
  if (!ready) return undefined;
  const info = JSON.parse(await w.ctd.crictl("inspectp", ready.id)) as Obj;
  const netns = (info.info?.runtimeSpec?.linux?.namespaces ?? []).find((n: Obj) =>
    n.type === "network"
  )?.path;
  const out = await new Deno.Command("nsenter", {
    args: [`--net=${netns}`, "ip", "-j", "addr", "show", "dev", ifname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) return undefined;
  const [link] = JSON.parse(new TextDecoder().decode(out.stdout)) as Obj[];
  return {
    ifname: link.ifname,
    mac: link.address,
    addrs: link.addr_info.map((a: Obj) => `${a.local}/${a.prefixlen}`),
  };
}

/**
 * Creates namespace `ns`, a NetworkAttachmentDefinition "blue" (hydra-bridge, hydra-ipam keeping
 * its store in `ipamDataDir` when given) and the
 * workload Pod naming it; waits until it runs and checks net1 in its namespace against its
 * network-status.
 */
async function runWorkload(w: World, ns: string, ipamDataDir?: string): Promise<void> {
  await w.cp.createNamespace(ns);
  const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
  await w.cp.api.must(
    "POST",
    `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
    {
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: { name: "blue" },
      spec: {
        config: JSON.stringify({
          cniVersion: "1.1.0",
          type: "hydra-bridge",
          bridge: uniqueName("hdb"),
          ipam: {
            type: "hydra-ipam",
            ranges: [[{ subnet: `10.242.${octet}.0/24` }]],
            ...(ipamDataDir ? { dataDir: ipamDataDir } : {}),
          },
        }),
      },
    },
  );
  const pod = workloadPod(w.ctd.pauseImage, "blue");
  await w.cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, pod);
  let current: Obj = {};
  const running = await poll(
    async () => {
      current = await w.cp.api.must("GET", `/api/v1/namespaces/${ns}/pods/workload`) as Obj;
      return current.status?.phase === "Running" &&
        Boolean(current.metadata.annotations?.[NETWORK_STATUS]);
    },
    120_000,
    500,
  );
  assert.ok(
    running,
    `workload: ${JSON.stringify(current.status)}\n${await podReport(
      w,
      "app.kubernetes.io/part-of=hydra",
    )}`,
  );
  const status = JSON.parse(current.metadata.annotations[NETWORK_STATUS]) as Obj[];
  const blue = status.find((s) => s.name === `${ns}/blue`);
  assert.ok(blue, JSON.stringify(status));
  assert.equal(blue.interface, "net1");
  const net1 = await podInterface(w, ns, "workload", "net1");
  assert.ok(net1, "net1 in the pod's namespace");
  assert.deepEqual(
    net1.addrs.filter((a: string) => a.startsWith("10.242.")).map((a: string) => a.split("/")[0]),
    blue.ips,
  );
}

/** Deletes the workload Pod and waits until it is gone (its networks' DEL has run). */
async function deleteWorkload(w: World, ns: string): Promise<void> {
  await w.cp.api.must("DELETE", `/api/v1/namespaces/${ns}/pods/workload`);
  assert.ok(
    await poll(
      async () =>
        (await w.cp.api.request("GET", `/api/v1/namespaces/${ns}/pods/workload`)).status === 404,
      60_000,
      250,
    ),
    "workload gone",
  );
}

/**
 * Runs `body` while counting the moments (every 20 ms) `complete` finds the node without what the
 * runtime needs to run a pod; returns that count.
 */
async function countGaps(complete: () => Promise<boolean>, body: () => Promise<void>) {
  let gaps = 0;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      if (!(await complete())) gaps++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await body();
  } finally {
    watching = false;
    await watch;
  }
  return gaps;
}

const isFile = (path: string) => Deno.stat(path).then((s) => s.isFile, () => false);

/** The version folder the node's launcher names (hydra's copy in meta mode), if any. */
async function launcherVersion(bin: string): Promise<string | undefined> {
  const text = await Deno.readTextFile(`${bin}/hydra`).catch(() => "");
  return /\/\.hydra\/'([^']+)'/.exec(text)?.[1];
}

/** Runs `hydra install --uninstall` from `image` in a Pod on the node, as deploy/README says. */
async function runUninstall(w: World, image: string, ns: string): Promise<void> {
  await w.cp.createNamespace(ns);
  const uninstall = {
    metadata: { name: "uninstall" },
    spec: {
      nodeName: w.kubelet.nodeName,
      restartPolicy: "Never",
      hostNetwork: true,
      tolerations: [{ operator: "Exists" }],
      containers: [{
        name: "uninstall",
        image,
        args: ["--uninstall", "--bin-dir=/opt/cni/bin", "--conf-dir=/etc/cni/net.d"],
        securityContext: {
          runAsUser: 0,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        },
        volumeMounts: [
          { name: "cni-bin", mountPath: "/opt/cni/bin" },
          { name: "cni-conf", mountPath: "/etc/cni/net.d" },
        ],
      }],
      volumes: [
        { name: "cni-bin", hostPath: { path: `${w.root}/opt/cni/bin` } },
        { name: "cni-conf", hostPath: { path: `${w.root}/etc/cni/net.d` } },
      ],
    },
  };
  await w.cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, uninstall);
  let phase = "";
  assert.ok(
    await poll(
      async () => {
        phase = ((await w.cp.api.must(
          "GET",
          `/api/v1/namespaces/${ns}/pods/uninstall`,
        )) as Obj).status?.phase;
        return phase === "Succeeded" || phase === "Failed";
      },
      120_000,
      500,
    ),
  );
  assert.equal(phase, "Succeeded", await podReport(w, "", ns));
}

Deno.test("deploy/ on a real node: install, a pod's networks, rolling upgrade, uninstall, helm", async (t) => {
  await withWorld(async (w) => {
    const before = await cniFolders(w.root);
    const ns = uniqueName("wl");
    const nriSetup = fittedManifest(w, "hydra-nri.yaml");
    // Each step builds on the one before: after a failure the rest only report that.
    let failed = false;
    const step = (name: string, fn: () => Promise<void>) =>
      t.step(name, async () => {
        if (failed) throw new Error("an earlier step failed");
        try {
          await fn();
        } catch (err) {
          failed = true;
          throw err;
        }
      });

    await step(
      "kubectl apply of hydra-nri.yaml: the pods come up and install hydra",
      async () => {
        await applyFitted(w, nriSetup);
        await waitDaemonSet(w, "hydra", w.image);
        const bin = `${w.root}/opt/cni/bin`;
        assert.ok((await Deno.stat(`${bin}/hydra`)).isFile, "hydra on the node");
        assert.equal(await Deno.readLink(`${bin}/hydra-bridge`), "hydra");
        const manifest = JSON.parse(
          await Deno.readTextFile(`${w.root}/etc/cni/net.d/hydra.d/install-manifest.json`),
        );
        assert.equal(manifest.mode, "nri");
        // NRI mode: the runtime's conf stays the default network's.
        const confs = [...Deno.readDirSync(`${w.root}/etc/cni/net.d`)].map((e) => e.name).filter((
          n,
        ) => /\.conf(list)?$/.test(n));
        assert.deepEqual(confs, ["10-default.conflist"]);
      },
    );

    await step("a Pod naming a NetworkAttachmentDefinition runs with that network", async () => {
      await runWorkload(w, ns);
    });

    await step(
      "kubectl apply of hydra-dra.yaml: the driver registers and publishes the node's devices",
      async () => {
        const dra = fittedManifest(w, "hydra-dra.yaml");
        await applyFitted(w, dra);
        await waitDaemonSet(w, "hydra-dra", w.image);
        const slices = await w.cp.api.must(
          "GET",
          `/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName=${w.kubelet.nodeName}`,
        ) as { items: Obj[] };
        assert.ok(
          slices.items.some((s) => s.spec.driver.startsWith("hydra")),
          JSON.stringify(slices.items.map((s) => s.spec.driver)),
        );
        await applyFitted(w, dra.filter((o) => o.kind !== "Namespace"), "delete", "--wait=true");
      },
    );

    await step(
      "a rolling upgrade keeps the pod's network; the node never lacks conf or executable",
      async () => {
        const net1Before = await podInterface(w, ns, "workload", "net1");
        const gaps = await countGaps(async () => {
          const names = [...Deno.readDirSync(`${w.root}/etc/cni/net.d`)].map((e) => e.name);
          return names.some((n) => /\.conf(list)?$/.test(n)) &&
            await isFile(`${w.root}/opt/cni/bin/hydra`);
        }, async () => {
          await w.cp.kubectl("-n", NS, "set", "image", "daemonset/hydra", `*=${w.upgradeImage}`);
          await waitDaemonSet(w, "hydra", w.upgradeImage);
        });
        assert.equal(gaps, 0, "moments without a CNI conf or hydra's executable");
        assert.deepEqual(await podInterface(w, ns, "workload", "net1"), net1Before);
        const pod = await w.cp.api.must("GET", `/api/v1/namespaces/${ns}/pods/workload`) as Obj;
        assert.equal(pod.status.phase, "Running");
        assert.equal(pod.status.containerStatuses[0].restartCount, 0);
      },
    );

    await step(
      "deleting the setup and running the uninstall leave the node as it was",
      async () => {
        await deleteWorkload(w, ns);
        await applyFitted(w, nriSetup, "delete", "--wait=true");
        await runUninstall(w, w.upgradeImage, "hydra-uninstall");
        assert.deepEqual(await cniFolders(w.root), before);
      },
    );

    await step(
      "helm install of the chart (NRI node setup and router), ready, helm uninstall",
      async () => {
        // The chart holds the hydra-system namespace itself: the release record lives elsewhere.
        await poll(
          async () => (await w.cp.api.request("GET", `/api/v1/namespaces/${NS}`)).status === 404,
          120_000,
          500,
        );
        const renderer = join(w.root, "post-render.sh");
        await Deno.writeTextFile(
          renderer,
          `#!/bin/sh\nexec ${JSON.stringify(Deno.execPath())} run -A ${
            JSON.stringify(join(repoRoot, "tests/deploy/test_node.ts"))
          }\n`,
          { mode: 0o755 },
        );
        const helm = (...args: string[]) =>
          runHelm(args, {
            kubeconfig: w.cp.kubeconfigPath,
            env: { HYDRA_TEST_NODE: JSON.stringify(w.node) },
          });
        await helm(
          "install",
          "hydra",
          CHART_DIR,
          "--namespace",
          "kube-system",
          "--set",
          "mode=nri",
          "--set",
          "router.enabled=true",
          "--post-renderer",
          renderer,
        );
        await waitDaemonSet(w, "hydra", w.image);
        await waitDaemonSet(w, "hydra-router", w.image);
        const manifest = JSON.parse(
          await Deno.readTextFile(`${w.root}/etc/cni/net.d/hydra.d/install-manifest.json`),
        );
        assert.equal(manifest.mode, "nri", "the chart's installer put hydra onto the node");
        await helm("uninstall", "hydra", "--namespace", "kube-system", "--wait");
        const left = await w.cp.kubectl(
          "get",
          "daemonsets,clusterroles",
          "-A",
          "-l",
          "app.kubernetes.io/part-of=hydra",
          "-o",
          "name",
        );
        assert.equal(left.trim(), "");
        await runUninstall(w, w.image, "hydra-uninstall-helm");
        assert.deepEqual(await cniFolders(w.root), before);
      },
    );

    await step(
      "hydra-meta.yaml from the offline image: the node runs hydra as its CNI, uninstall restores",
      async () => {
        await poll(
          async () => (await w.cp.api.request("GET", `/api/v1/namespaces/${NS}`)).status === 404,
          120_000,
          500,
        );
        const meta = fittedManifest(w, "hydra-meta.yaml");
        await applyFitted(w, meta);
        await waitDaemonSet(w, "hydra", w.image);
        await waitDaemonSet(w, "hydra-daemon", w.image);
        await waitDaemonSet(w, "hydra-policy", w.image);
        // The image carries hydra as a source tree: the node got a copy of its own.
        const bin = `${w.root}/opt/cni/bin`;
        const versions = [...Deno.readDirSync(`${bin}/.hydra`)].map((e) => e.name);
        assert.equal(versions.length, 1, versions.join(", "));
        assert.ok((await Deno.stat(`${bin}/.hydra/${versions[0]}/deno`)).isFile);
        assert.equal(await Deno.readLink(`${bin}/hydra-bridge`), "hydra");
        const conf = JSON.parse(
          await Deno.readTextFile(`${w.root}/etc/cni/net.d/00-hydra.conflist`),
        );
        assert.equal(conf.plugins[0].type, "hydra");
        // The runtime's CNI is now hydra: the kubelet's sandbox goes through the meta-CNI.
        const metaNs = uniqueName("wm");
        // Run by the meta-CNI on the node: the IPAM store stays in the test node's folders.
        const ipamDir = `${w.root}/var/lib/cni/networks`;
        await runWorkload(w, metaNs, ipamDir);

        // A rolling upgrade: the runtime execs hydra all along, so the launcher and the version
        // it names are always there, and the version before stays for execs already started.
        const net1Before = await podInterface(w, metaNs, "workload", "net1");
        const gaps = await countGaps(async () => {
          const version = await launcherVersion(bin);
          return version !== undefined && await isFile(`${bin}/.hydra/${version}/deno`) &&
            await isFile(`${w.root}/etc/cni/net.d/00-hydra.conflist`);
        }, async () => {
          for (const ds of ["hydra", "hydra-daemon"]) {
            await w.cp.kubectl("-n", NS, "set", "image", `daemonset/${ds}`, `*=${w.upgradeImage}`);
          }
          await waitDaemonSet(w, "hydra", w.upgradeImage);
          await waitDaemonSet(w, "hydra-daemon", w.upgradeImage);
        });
        assert.equal(gaps, 0, "moments without the launcher, its version or the conf");
        const upgraded = [...Deno.readDirSync(`${bin}/.hydra`)].map((e) => e.name).sort();
        const named = await launcherVersion(bin);
        assert.notEqual(named, versions[0], "the launcher names the new version");
        assert.deepEqual(upgraded, [named, versions[0]].sort(), "the version before is kept");
        assert.deepEqual(await podInterface(w, metaNs, "workload", "net1"), net1Before);
        // A pod started after the upgrade runs through the new version; the one attached by the
        // old version is deleted through it too.
        const afterNs = uniqueName("wu");
        await runWorkload(w, afterNs, ipamDir);
        await deleteWorkload(w, afterNs);
        await deleteWorkload(w, metaNs);
        await applyFitted(w, meta, "delete", "--wait=true");
        await runUninstall(w, w.upgradeImage, "hydra-uninstall-meta");
        assert.deepEqual(await cniFolders(w.root), before);
      },
    );
  });
});
