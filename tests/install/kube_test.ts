/**
 * deploy/ and `hydra install` against a real kube-apiserver: every manifest
 * passes server-side dry-run; the roles grant exactly the verbs hydra uses
 * (checked with `kubectl auth can-i` as the ServiceAccounts); the kubeconfig
 * the installer writes from a real ServiceAccount token authenticates, and
 * keeps authenticating after the token rotates.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { peerBin } from "../infra/peers.ts";
import { createKubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { makeNode, removeNode, repoRoot, runInstall, writeProjectedToken } from "./helpers.ts";

const NS = "hydra-system";
const deployDir = join(repoRoot, "deploy");
const MANIFESTS = [
  "crds/network-attachment-definition.yaml",
  "hydra-meta.yaml",
  "hydra-nri.yaml",
  "hydra-router.yaml",
];

/** Runs kubectl; returns exit code and output (a "no" from can-i is exit 1, not an error). */
async function kubectl(kubeconfig: string, ...args: string[]) {
  const out = await new Deno.Command(peerBin("kubectl"), {
    args: [`--kubeconfig=${kubeconfig}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `kubectl auth can-i` as a ServiceAccount: true for "yes". */
async function canI(cp: ControlPlane, sa: string, ...args: string[]): Promise<boolean> {
  const res = await kubectl(
    cp.kubeconfigPath,
    "auth",
    "can-i",
    ...args,
    `--as=system:serviceaccount:${NS}:${sa}`,
  );
  const answer = res.stdout.trim();
  assert.ok(answer === "yes" || answer === "no", `can-i ${args.join(" ")}: ${res.stderr}`);
  return answer === "yes";
}

/** The SubjectAccessReview attributes of a `kubectl auth can-i` argument list. */
function accessAttributes(args: string[]): Record<string, string> {
  const [verb, target, ...flags] = args;
  const dot = target.indexOf(".");
  const attrs: Record<string, string> = {
    verb,
    resource: dot < 0 ? target : target.slice(0, dot),
    group: target === "*" ? "*" : dot < 0 ? "" : target.slice(dot + 1),
  };
  for (let i = 0; i < flags.length; i++) {
    if (flags[i] === "-n") attrs.namespace = flags[++i];
    else if (flags[i].startsWith("--subresource=")) attrs.subresource = flags[i].split("=")[1];
  }
  return attrs;
}

/** The API server's own answer (SubjectAccessReview) for the ServiceAccount `sa`. */
async function review(cp: ControlPlane, sa: string, args: string[]): Promise<boolean> {
  const res = await cp.api.must("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      user: `system:serviceaccount:${NS}:${sa}`,
      groups: ["system:serviceaccounts", `system:serviceaccounts:${NS}`, "system:authenticated"],
      resourceAttributes: accessAttributes(args),
    },
  }) as { status?: { allowed?: boolean } };
  return res.status?.allowed === true;
}

/**
 * Resources this API server does not serve (no CRD for them here): kubectl
 * cannot resolve them, so only the SubjectAccessReview answers.
 */
const NOT_SERVED = new Set(["networks.kubernetes-network.cni.cncf.io"]);

/** Both answers, which must agree; true for "allowed". */
async function allowed(cp: ControlPlane, sa: string, args: string[]): Promise<boolean> {
  const server = await review(cp, sa, args);
  if (NOT_SERVED.has(args[1])) return server;
  assert.equal(await canI(cp, sa, ...args), server, `kubectl and the API agree on ${args}`);
  return server;
}

/** The verbs hydra uses, per ServiceAccount, and a sample it must not have. */
const ALLOWED: Record<string, string[][]> = {
  hydra: [
    ["get", "pods", "-n", "default"],
    // hydra daemon's cache of the node's pods (the meta setup's hydra-daemon role).
    ["list", "pods", "--all-namespaces"],
    ["watch", "pods", "--all-namespaces"],
    ["update", "pods", "--subresource=status", "-n", "default"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["list", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["watch", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["get", "networks.kubernetes-network.cni.cncf.io", "-n", "default"],
    ["get", "nodes"],
    ["list", "nodes"],
    ["watch", "nodes"],
    ["create", "events", "-n", "default"],
    ["patch", "events", "-n", "default"],
  ],
  "hydra-router": [
    ["get", "nodes"],
    ["list", "nodes"],
    ["watch", "nodes"],
    ["create", "events", "-n", "default"],
    ["patch", "events", "-n", "default"],
  ],
};
const DENIED: Record<string, string[][]> = {
  hydra: [
    ["get", "secrets", "-n", "default"],
    ["list", "secrets", "--all-namespaces"],
    ["delete", "pods", "-n", "default"],
    ["update", "pods", "-n", "default"],
    ["patch", "pods", "-n", "default"],
    ["create", "pods", "-n", "default"],
    ["patch", "nodes"],
    ["update", "nodes", "--subresource=status"],
    ["delete", "nodes"],
    ["create", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["delete", "events", "-n", "default"],
    ["get", "configmaps", "-n", NS],
    ["create", "serviceaccounts/token", "-n", NS],
    ["*", "*"],
  ],
  "hydra-router": [
    ["get", "secrets", "-n", "default"],
    ["get", "pods", "-n", "default"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["patch", "nodes"],
    ["delete", "pods", "-n", "default"],
  ],
};

/**
 * Runs `hydra daemon` with `kubeconfig` until it says every watch cache has
 * listed; false when it has not within 30 s (a missing rule keeps a cache
 * from ever listing).
 */
async function daemonSyncs(kubeconfig: string, dir: string): Promise<boolean> {
  const socket = join(dir, "daemon.sock");
  const child = new Deno.Command(join(repoRoot, "bin", "hydra"), {
    args: [
      "daemon",
      `--kubeconfig=${kubeconfig}`,
      "--node-name=rbac-node",
      `--socket=${socket}`,
      "--listen=",
      `--spool-dir=${join(dir, "spool")}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const conn = await connectNodeDaemon(socket).catch(() => undefined);
      if (conn) {
        try {
          const res = await conn.call({ op: "ping" }, 2_000);
          if (res.ok && (res.body as { synced?: boolean }).synced) return true;
        } catch {
          // not answering yet
        } finally {
          conn.close();
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    const log = await stderr;
    assert.equal(status.code, 0, `hydra daemon: ${log}`);
    assert.ok(!/forbidden/i.test(log), `hydra daemon was refused something: ${log}`);
  }
}

Deno.test("deploy/ and hydra install against a real kube-apiserver", async (t) => {
  const cp = await startControlPlane();
  try {
    await t.step("every manifest passes server-side dry-run and creates nothing", async () => {
      // Namespaced objects can only be dry-run into a namespace that exists.
      await cp.kubectl("create", "namespace", NS);
      for (const file of MANIFESTS) {
        const res = await kubectl(
          cp.kubeconfigPath,
          "apply",
          "--dry-run=server",
          "-f",
          join(deployDir, file),
        );
        assert.equal(res.code, 0, `${file}: ${res.stderr}`);
        assert.match(res.stdout, /\(server dry run\)/, file);
      }
      const ds = await cp.kubectl("get", "daemonsets", "-n", NS, "-o", "name");
      assert.equal(ds.trim(), "", "a dry run creates no DaemonSet");
      const sa = await kubectl(cp.kubeconfigPath, "get", "serviceaccount", "hydra", "-n", NS);
      assert.notEqual(sa.code, 0, "a dry run creates no ServiceAccount");
    });

    await t.step("the roles grant exactly the verbs hydra uses", async () => {
      await cp.kubectl("apply", "-f", join(deployDir, "hydra-meta.yaml"));
      await cp.kubectl("apply", "-f", join(deployDir, "hydra-router.yaml"));
      for (const [sa, checks] of Object.entries(ALLOWED)) {
        for (const args of checks) {
          assert.equal(await allowed(cp, sa, args), true, `${sa} may ${args.join(" ")}`);
        }
      }
      for (const [sa, checks] of Object.entries(DENIED)) {
        for (const args of checks) {
          assert.equal(await allowed(cp, sa, args), false, `${sa} may not ${args.join(" ")}`);
        }
      }
    });

    await t.step("the installer's kubeconfig authenticates, also after rotation", async () => {
      const node = await makeNode({ token: "placeholder" });
      try {
        const caPem = await Deno.readTextFile(cp.caPath);
        await writeProjectedToken(
          node.saDir,
          await cp.mintServiceAccountToken(NS, "hydra"),
          caPem,
        );
        const flags = [
          ...node.flags.filter((f) => !f.startsWith("--server=")),
          `--server=${cp.server}`,
          `--source=${join(repoRoot, "bin", "hydra")}`,
          "--once",
        ];
        const first = await runInstall(flags);
        assert.equal(first.code, 0, first.stderr);
        const kubeconfig = join(node.confDir, "hydra.d", "hydra.kubeconfig");

        // kubectl, as the ServiceAccount, with nothing but this file.
        const whoami = await kubectl(
          kubeconfig,
          "auth",
          "whoami",
          "-o",
          "jsonpath={.status.userInfo.username}",
        );
        assert.equal(whoami.code, 0, whoami.stderr);
        assert.equal(whoami.stdout, `system:serviceaccount:${NS}:hydra`);
        const nodes = await kubectl(kubeconfig, "get", "nodes", "-o", "name");
        assert.equal(nodes.code, 0, nodes.stderr);
        const secrets = await kubectl(kubeconfig, "get", "secrets", "-n", "default");
        assert.notEqual(secrets.code, 0);
        assert.match(secrets.stderr, /forbidden/i);

        // hydra's own client reads the same file.
        const client = createKubeClient(await loadKubeconfig(kubeconfig));
        try {
          const list = await client.list<unknown>("/api/v1/nodes");
          assert.ok(Array.isArray(list.items));
        } finally {
          client.close();
        }

        // hydra daemon, as the meta setup runs it, with nothing but these rights: every watch
        // cache lists (pods of its node, NADs, its Node).
        assert.equal(await daemonSyncs(kubeconfig, node.confDir), true, "hydra daemon synced");

        // The kubelet rotates the token: after the next pass the file carries the new one.
        const rotated = await cp.mintServiceAccountToken(NS, "hydra");
        await writeProjectedToken(node.saDir, rotated, caPem);
        const second = await runInstall(flags);
        assert.equal(second.code, 0, second.stderr);
        assert.ok(second.logs.some((l) => l.path === kubeconfig && l.action === "replaced"));
        assert.equal(JSON.parse(await Deno.readTextFile(kubeconfig)).users[0].user.token, rotated);
        const again = await kubectl(kubeconfig, "auth", "can-i", "get", "pods", "-n", "default");
        assert.equal(again.stdout.trim(), "yes", again.stderr);

        // A token the API server does not know is refused: the checks above are real.
        await writeProjectedToken(node.saDir, "not-a-token", caPem);
        assert.equal((await runInstall(flags)).code, 0);
        const refused = await kubectl(kubeconfig, "get", "nodes");
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /Unauthorized|must be logged in/i);
      } finally {
        await removeNode(node);
      }
    });
  } finally {
    await cp.stop();
  }
});
