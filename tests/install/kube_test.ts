/**
 * deploy/ and `hydra install` against a real kube-apiserver: every manifest
 * passes server-side dry-run; the roles grant exactly the verbs hydra uses
 * (checked with `kubectl auth can-i` as the ServiceAccounts, and the API
 * server's own access review); the node kubeconfig the installer mints
 * authenticates as the node and is renewed as its token ages.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { peerBin } from "../infra/peers.ts";
import { createKubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { boundToken, daemonSetPodToken } from "../kube/manifest_rbac.ts";
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
  const [verb, resourceAndName, ...flags] = args;
  // "serviceaccounts/hydra-node": a resource and an object's name, as kubectl reads it.
  const [target, name] = resourceAndName.split("/");
  const dot = target.indexOf(".");
  const attrs: Record<string, string> = {
    verb,
    resource: dot < 0 ? target : target.slice(0, dot),
    group: target === "*" ? "*" : dot < 0 ? "" : target.slice(dot + 1),
  };
  if (name) attrs.name = name;
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
  "hydra-install": [["create", "serviceaccounts/hydra-node", "--subresource=token", "-n", NS]],
  "hydra-node": [
    ["get", "pods", "-n", "default"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["get", "networks.kubernetes-network.cni.cncf.io", "-n", "default"],
    ["get", "nodes"],
    ["create", "events", "-n", "default"],
  ],
  "hydra-daemon": [
    ["get", "pods", "-n", "default"],
    // The cache of the node's pods (asked with a spec.nodeName field selector).
    ["list", "pods", "--all-namespaces"],
    ["watch", "pods", "--all-namespaces"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["list", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["watch", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["get", "networks.kubernetes-network.cni.cncf.io", "-n", "default"],
    ["get", "nodes"],
    ["list", "nodes"],
    ["watch", "nodes"],
    ["create", "events", "-n", "default"],
  ],
  "hydra-nri": [
    ["get", "pods", "-n", "default"],
    // The watch caches attaches read: the node's pods (asked with a spec.nodeName field
    // selector), every NAD, the Node (metadata.name).
    ["list", "pods", "--all-namespaces"],
    ["watch", "pods", "--all-namespaces"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["list", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["watch", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["get", "nodes"],
    ["list", "nodes"],
    ["watch", "nodes"],
    ["create", "events", "-n", "default"],
  ],
  "hydra-policy": [
    ["list", "pods", "--all-namespaces"],
    ["watch", "pods", "--all-namespaces"],
    ["list", "namespaces"],
    ["watch", "namespaces"],
    ["list", "multi-networkpolicies.k8s.cni.cncf.io", "--all-namespaces"],
    ["watch", "multi-networkpolicies.k8s.cni.cncf.io", "--all-namespaces"],
    ["list", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["create", "events", "-n", "default"],
  ],
  "hydra-router": [
    ["list", "nodes"],
    ["watch", "nodes"],
    ["create", "events", "-n", "default"],
  ],
};
/** What nobody of hydra may do. */
const DENIED_ALL: string[][] = [
  ["get", "secrets", "-n", "default"],
  ["list", "secrets", "--all-namespaces"],
  ["get", "configmaps", "-n", NS],
  ["delete", "pods", "-n", "default"],
  ["update", "pods", "-n", "default"],
  ["patch", "pods", "-n", "default"],
  ["create", "pods", "-n", "default"],
  ["update", "pods", "--subresource=status", "-n", "default"],
  ["patch", "nodes"],
  ["update", "nodes", "--subresource=status"],
  ["delete", "nodes"],
  ["create", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
  ["delete", "events", "-n", "default"],
  ["patch", "events", "-n", "default"],
  ["create", "serviceaccounts/hydra-daemon", "--subresource=token", "-n", NS],
  ["*", "*"],
];
const DENIED: Record<string, string[][]> = {
  "hydra-install": [
    ...DENIED_ALL,
    ["get", "pods", "-n", "default"],
    ["get", "nodes"],
    ["create", "serviceaccounts/hydra-install", "--subresource=token", "-n", NS],
  ],
  "hydra-node": [
    ...DENIED_ALL,
    ["list", "pods", "--all-namespaces"],
    ["watch", "pods", "--all-namespaces"],
    ["list", "network-attachment-definitions.k8s.cni.cncf.io", "--all-namespaces"],
    ["list", "nodes"],
    ["create", "serviceaccounts/hydra-node", "--subresource=token", "-n", NS],
  ],
  "hydra-daemon": DENIED_ALL,
  "hydra-policy": [
    ...DENIED_ALL,
    ["get", "pods", "-n", "default"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "nodes"],
  ],
  "hydra-nri": DENIED_ALL,
  "hydra-router": [
    ...DENIED_ALL,
    ["get", "nodes"],
    ["get", "pods", "-n", "default"],
    ["patch", "pods", "--subresource=status", "-n", "default"],
    ["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default"],
    ["create", "events", "-n", NS],
  ],
};

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
      const sa = await kubectl(
        cp.kubeconfigPath,
        "get",
        "serviceaccount",
        "hydra-install",
        "-n",
        NS,
      );
      assert.notEqual(sa.code, 0, "a dry run creates no ServiceAccount");
    });

    await t.step("the roles grant exactly the verbs hydra uses", async () => {
      for (const file of ["hydra-meta.yaml", "hydra-nri.yaml", "hydra-router.yaml"]) {
        await cp.kubectl("apply", "-f", join(deployDir, file));
      }
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

    await t.step(
      "the node kubeconfig the installer mints authenticates as the node, and is renewed",
      async () => {
        const node = await makeNode({ token: "placeholder" });
        try {
          const caPem = await Deno.readTextFile(cp.caPath);
          const installerToken = await daemonSetPodToken(cp, "hydra-install", "n1");
          await writeProjectedToken(node.saDir, installerToken, caPem);
          const flags = [
            ...node.flags.filter((f) => !f.startsWith("--server=")),
            `--server=${cp.server}`,
            `--source=${join(repoRoot, "bin", "hydra")}`,
            `--node-service-account=${NS}/hydra-node`,
            "--node-name=n1",
            "--node-token-ttl=3600",
            "--once",
          ];
          const first = await runInstall(flags);
          assert.equal(first.code, 0, first.stderr);
          const kubeconfig = join(node.confDir, "hydra.d", "hydra.kubeconfig");

          // kubectl, as the node, with nothing but this file.
          const whoami = await kubectl(
            kubeconfig,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
          );
          assert.equal(whoami.code, 0, whoami.stderr);
          assert.equal(whoami.stdout, `system:serviceaccount:${NS}:hydra-node`);
          const own = await kubectl(kubeconfig, "get", "node", "n1", "-o", "name");
          assert.equal(own.code, 0, own.stderr);
          const secrets = await kubectl(kubeconfig, "get", "secrets", "-n", "default");
          assert.notEqual(secrets.code, 0);
          assert.match(secrets.stderr, /forbidden/i);
          // hydra's own client reads the same file.
          const client = createKubeClient(await loadKubeconfig(kubeconfig));
          try {
            assert.equal(
              (await client.get<{ metadata: { name: string } }>("/api/v1/nodes/n1")).metadata.name,
              "n1",
            );
          } finally {
            client.close();
          }

          // A node token past half its lifetime is replaced by the next pass.
          const doc = JSON.parse(await Deno.readTextFile(kubeconfig));
          const ageing = await boundToken(cp, "hydra-node", { kind: "Node", name: "n1" }, 900);
          doc.users[0].user.token = ageing;
          await Deno.writeTextFile(kubeconfig, JSON.stringify(doc), { mode: 0o600 });
          const second = await runInstall(flags);
          assert.equal(second.code, 0, second.stderr);
          assert.ok(second.logs.some((l) => l.path === kubeconfig && l.action === "replaced"));
          const renewed = JSON.parse(await Deno.readTextFile(kubeconfig)).users[0].user.token;
          assert.notEqual(renewed, ageing);
          const again = await kubectl(kubeconfig, "auth", "can-i", "get", "pods", "-n", "default");
          assert.equal(again.stdout.trim(), "yes", again.stderr);

          // The installer's own token refused: the node token, still young, is kept and works.
          await writeProjectedToken(node.saDir, "not-a-token", caPem);
          const third = await runInstall(flags);
          assert.equal(third.code, 0, third.stderr);
          assert.equal(
            JSON.parse(await Deno.readTextFile(kubeconfig)).users[0].user.token,
            renewed,
          );
          // ... and an ageing one is kept too while it is valid, with a warning saying why.
          doc.users[0].user.token = ageing;
          await Deno.writeTextFile(kubeconfig, JSON.stringify(doc), { mode: 0o600 });
          const fourth = await runInstall(flags);
          assert.equal(fourth.code, 0, fourth.stderr);
          assert.match(
            fourth.stderr,
            /cannot mint the node kubeconfig's token.*Unauthorized.*keeping the node token, valid for \d+ s more/,
          );
          // A token the API server does not know is refused: the checks above are real.
          doc.users[0].user.token = "not-a-token";
          await Deno.writeTextFile(kubeconfig, JSON.stringify(doc), { mode: 0o600 });
          const refused = await kubectl(kubeconfig, "get", "nodes");
          assert.notEqual(refused.code, 0);
          assert.match(refused.stderr, /Unauthorized|must be logged in/i);
        } finally {
          await removeNode(node);
        }
      },
    );
  } finally {
    await cp.stop();
  }
});
