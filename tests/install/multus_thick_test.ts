/**
 * `hydra install` on a node whose CNI conf is Multus thick's, written by
 * the real multus-daemon run as its own DaemonSet runs it: in a root laid
 * out as its container (the node's conf folder at /host/etc/cni/net.d, its
 * daemon-config.json from the DaemonSet's ConfigMap — read from Multus'
 * module at run time — at /etc/cni/net.d/multus.d, the node's root at
 * /hostroot, its ServiceAccount), against a real kube-apiserver.
 *
 * The installer never wraps Multus: without Multus' daemon config it
 * refuses (with --once: exit 1; running: not ready, the reason on /readyz,
 * nothing written); given the ConfigMap it unwraps the conf into hydra's,
 * the default network read from the node's folder where Multus' conf names
 * it by its container path.
 *
 * Needs root, the built peers (etcd, kube-apiserver, multus-daemon) and
 * Multus' module in the Go module cache.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { multusModuleDir, thickDaemonConfig } from "../infra/multus_module.ts";
import { peerBin } from "../infra/peers.ts";
import { waitUntil } from "../infra/process.ts";
import { createRootWorld, type RootWorld } from "../helpers/image_world.ts";
import {
  DEFAULT_CONF,
  makeNode,
  type Node,
  removeNode,
  runInstall,
  startInstall,
  waitFor,
} from "./helpers.ts";

type Json = Record<string, unknown>;

/** The RBAC objects of Multus' thick DaemonSet manifest (ServiceAccount, ClusterRole, binding). */
async function applyMultusRbac(cp: ControlPlane): Promise<void> {
  const path = join(await multusModuleDir(), "deployments", "multus-daemonset-thick.yml");
  const paths: Record<string, string> = {
    ServiceAccount: "/api/v1/namespaces/kube-system/serviceaccounts",
    ClusterRole: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    ClusterRoleBinding: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
  };
  for (const doc of parseAllDocuments(await Deno.readTextFile(path))) {
    const obj = doc.toJS() as Json | null;
    const kind = String(obj?.kind);
    if (obj && Object.hasOwn(paths, kind)) await cp.api.must("POST", paths[kind], obj, [409]);
  }
}

/** The multus-daemon container of the DaemonSet, on this node. */
interface ThickDaemon {
  world: RootWorld;
  /** The daemon config as the ConfigMap mounts it, for the installer. */
  configPath: string;
  stop(): Promise<void>;
}

async function startThick(cp: ControlPlane, node: Node): Promise<ThickDaemon> {
  await cp.createNamespace("kube-system").catch(() => {});
  await applyMultusRbac(cp);
  const config = await thickDaemonConfig();
  const configPath = join(node.root, "daemon-config.json");
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 4));
  const account = join(node.root, "multus-sa");
  await Deno.mkdir(account);
  await Deno.writeTextFile(
    join(account, "token"),
    await cp.mintServiceAccountToken("kube-system", "multus"),
  );
  await Deno.copyFile(cp.caPath, join(account, "ca.crt"));
  await Deno.writeTextFile(join(account, "namespace"), "kube-system");
  const hostRun = join(node.root, "host-run");
  const multusCache = join(node.root, "multus-cache");
  await Deno.mkdir(hostRun);
  await Deno.mkdir(multusCache);
  const world = await createRootWorld("hydra-multus-thick-", async (l) => {
    await l.bind(peerBin("multus-daemon"), "/usr/src/multus-cni/bin/multus-daemon", {
      file: true,
      ro: true,
    });
    await l.bind(node.confDir, "/host/etc/cni/net.d");
    await l.bind(node.binDir, "/opt/cni/bin");
    await l.bind(hostRun, "/host/run");
    await l.bind(multusCache, "/var/lib/cni/multus");
    await l.bind("/run/netns", "/run/netns");
    await l.bind(configPath, "/etc/cni/net.d/multus.d/daemon-config.json", {
      file: true,
      ro: true,
    });
    await l.bind("/", "/hostroot");
    await l.bind(account, "/var/run/secrets/kubernetes.io/serviceaccount", { ro: true });
    await l.bind("/dev", "/dev");
    await l.proc();
    // As in its image: the daemon checks that it runs as root by name.
    await l.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    await l.file("/etc/group", "root:x:0:\n");
  });
  const server = new URL(cp.server);
  const child = world.spawn(["/usr/src/multus-cni/bin/multus-daemon"], {
    env: {
      KUBERNETES_SERVICE_HOST: server.hostname,
      KUBERNETES_SERVICE_PORT: server.port,
      MULTUS_NODE_NAME: "node-1",
    },
  });
  child.stdin.close();
  const logs = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await logs;
    await world.close();
  };
  try {
    const confPath = join(node.confDir, "00-multus.conf");
    let exited = false;
    child.status.then(() => exited = true);
    await waitUntil("multus-daemon to write 00-multus.conf", async () => {
      if (exited) throw new Error("multus-daemon exited");
      try {
        return JSON.parse(await Deno.readTextFile(confPath)).type === "multus-shim";
      } catch {
        return false;
      }
    }, 90_000);
  } catch (err) {
    await stop();
    throw new Error(`${err}\nmultus-daemon said: ${(await logs).join("\n")}`);
  }
  return { world, configPath, stop };
}

const HYDRA_CONF = "00-hydra.conflist";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("hydra install on Multus thick's conf: refused without its daemon config, unwrapped with it", async (t) => {
  peerBin("multus-daemon"); // throws (fails the test) when it was not built
  const cp = await startControlPlane();
  const node = await makeNode();
  let thick: ThickDaemon | undefined;
  try {
    thick = await startThick(cp, node);
    const shim = JSON.parse(await Deno.readTextFile(join(node.confDir, "00-multus.conf")));

    await t.step(
      "Multus wrote its shim conf, naming the default network by its container path",
      () => {
        assert.equal(shim.type, "multus-shim");
        assert.equal(shim.clusterNetwork, "/host/etc/cni/net.d/10-podnet.conflist");
      },
    );

    await t.step(
      "--once without the daemon config: exit 1, the reason, nothing written",
      async () => {
        const out = await runInstall(["--once", ...node.flags]);
        assert.equal(out.code, 1, out.stderr);
        const error = out.logs.find((l) => l.level === "error");
        assert.match(String(error?.msg), /Multus thick .* does not wrap another meta-plugin/);
        assert.match(String(error?.msg), /--multus-daemon-config/);
        assert.match(String(error?.msg), /docs\/migrating-from-multus\.md/);
        assert.equal(await exists(join(node.confDir, HYDRA_CONF)), false);
      },
    );

    await t.step("running: not ready with the reason, nothing written, until stopped", async () => {
      const installer = startInstall([
        ...node.flags,
        "--interval=0.1",
        "--health-addr=127.0.0.1:0",
      ]);
      try {
        await installer.waitForLog((l) => typeof l.address === "string", "the endpoint");
        const address = String(installer.logs.find((l) => typeof l.address === "string")!.address);
        await installer.waitForLog(
          (l) => /hydra's conf refused/.test(String(l.outcome)),
          "refusal",
        );
        const ready = await fetch(`http://${address}/readyz`);
        const body = await ready.text();
        assert.equal(ready.status, 503);
        assert.match(body, /Multus thick/);
        // Still refusing a few passes later (logged once: an unchanged error is not repeated
        // every pass), still nothing written.
        await waitFor(async () => {
          const text = await (await fetch(`http://${address}/metrics`)).text();
          return Number(/^hydra_install_passes_total\{result="error"\} (\d+)$/m.exec(text)?.[1]) >=
            3;
        }, "three refused passes");
        assert.equal(installer.logs.filter((l) => l.level === "error").length, 1);
        assert.equal(await exists(join(node.confDir, HYDRA_CONF)), false);
        const result = await installer.stop("SIGTERM");
        assert.equal(result.code, 0, result.stderr);
      } finally {
        await installer.stop("SIGKILL");
      }
    });

    await t.step(
      "with the ConfigMap: hydra's conf holds the default network, never Multus",
      async () => {
        const out = await runInstall([
          "--once",
          ...node.flags,
          `--multus-daemon-config=${thick!.configPath}`,
        ]);
        assert.equal(out.code, 0, out.stderr);
        const list = JSON.parse(await Deno.readTextFile(join(node.confDir, HYDRA_CONF)));
        const plugin = list.plugins[0];
        assert.equal(plugin.type, "hydra");
        assert.deepEqual(plugin.delegates, [DEFAULT_CONF]);
        assert.deepEqual(plugin.capabilities, { portMappings: true });
        assert.equal(plugin.cniDir, "/var/lib/cni/multus");
        assert.ok(!JSON.stringify(list).includes("multus-shim"));
        const msgs = out.logs.map((l) => String(l.msg));
        assert.ok(
          msgs.some((m) => m.includes("is ") && m.includes("on the node")),
          msgs.join("\n"),
        );
        assert.ok(msgs.some((m) => m.startsWith("chrootDir not carried")), msgs.join("\n"));
        // hydra's conf sorts first: the runtime uses it, not Multus'.
        const names = [...Deno.readDirSync(node.confDir)].map((e) => e.name).filter((n) =>
          /\.(conf|conflist|json)$/.test(n)
        ).sort();
        assert.equal(names[0], HYDRA_CONF);
      },
    );
  } finally {
    await thick?.stop();
    await removeNode(node);
    await cp.stop();
  }
});
