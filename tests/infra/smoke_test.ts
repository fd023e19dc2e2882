/**
 * Smoke tests of the test infrastructure against the real programs: the control plane stores and
 * serves Pods and NetworkAttachmentDefinitions (kubectl and plain fetch), RBAC applies to minted
 * ServiceAccount credentials, containerd runs a pod sandbox whose network comes from the
 * reference bridge plugin, and containerd accepts an NRI plugin connection.
 *
 * Needs root and the built peers (`deno task peers`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startControlPlane } from "./cluster.ts";
import { startContainerd } from "./containerd.ts";
import { kubeApi } from "./kubeapi.ts";
import { nriHandshake } from "./nri_handshake.ts";
import { peerBin, referencePluginDir, versions } from "./peers.ts";
import { runCommand } from "./process.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

function podManifest(namespace: string, name: string, nodeName: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      nodeName,
      containers: [{ name: "main", image: versions().PAUSE_IMAGE }],
    },
  };
}

function nadManifest(namespace: string, name: string, config: string) {
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name, namespace },
    spec: { config },
  };
}

interface KubeObject {
  metadata: { name: string; namespace: string; uid: string };
  spec: { nodeName?: string; config?: string };
}

Deno.test("control plane stores Pods and NetworkAttachmentDefinitions (kubectl)", async () => {
  const cp = await startControlPlane();
  try {
    const ns = uniqueName("ns");
    await cp.createNamespace(ns);
    const config = JSON.stringify({ cniVersion: "1.1.0", name: "net-a", type: "bridge" });
    const file = join(cp.dir, "objects.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [podManifest(ns, "pod-a", "node-a"), nadManifest(ns, "net-a", config)],
      }),
    );
    await cp.kubectl("create", "-f", file);

    const pod = JSON.parse(await cp.kubectl("get", "pod", "-n", ns, "pod-a", "-o", "json"));
    assert.equal(pod.spec.nodeName, "node-a");
    assert.match(pod.metadata.uid, /^[0-9a-f-]{36}$/);
    const nad = JSON.parse(
      await cp.kubectl("get", "network-attachment-definitions", "-n", ns, "net-a", "-o", "json"),
    );
    assert.equal(nad.spec.config, config);
    // The short name from the CRD works too.
    const names = await cp.kubectl("get", "net-attach-def", "-n", ns, "-o", "name");
    assert.equal(names.trim(), "networkattachmentdefinition.k8s.cni.cncf.io/net-a");
  } finally {
    await cp.stop();
  }
});

Deno.test("control plane serves the API to fetch with client certificates and tokens", async () => {
  const cp = await startControlPlane();
  const caCerts = [await Deno.readTextFile(cp.caPath)];
  const certClient = Deno.createHttpClient({
    caCerts,
    cert: await Deno.readTextFile(cp.adminCertPath),
    key: await Deno.readTextFile(cp.adminKeyPath),
  });
  const tokenClient = Deno.createHttpClient({ caCerts });
  try {
    const ns = uniqueName("ns");
    await cp.createNamespace(ns);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(cp.server + path, {
        method: "POST",
        client: certClient,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 201, await res.text());
    };
    await post(`/api/v1/namespaces/${ns}/pods`, podManifest(ns, "pod-b", "node-b"));
    const config = JSON.stringify({ cniVersion: "1.1.0", name: "net-b", type: "macvlan" });
    await post(
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
      nadManifest(ns, "net-b", config),
    );

    // Read back with the static admin token.
    const get = async (path: string) => {
      const res = await fetch(cp.server + path, {
        client: tokenClient,
        headers: { authorization: `Bearer ${cp.adminToken}` },
      });
      assert.equal(res.status, 200);
      return await res.json() as KubeObject;
    };
    const pod = await get(`/api/v1/namespaces/${ns}/pods/pod-b`);
    assert.equal(pod.spec.nodeName, "node-b");
    const nad = await get(
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions/net-b`,
    );
    assert.equal(nad.spec.config, config);

    // Without credentials the request is anonymous and RBAC denies it.
    const anonymous = await fetch(`${cp.server}/api/v1/namespaces/${ns}/pods`, {
      client: tokenClient,
    });
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 403);
  } finally {
    certClient.close();
    tokenClient.close();
    await cp.stop();
  }
});

Deno.test("minted ServiceAccount credentials are subject to RBAC", async () => {
  const cp = await startControlPlane();
  try {
    const ns = uniqueName("ns");
    await cp.createNamespace(ns);
    await cp.api.must("POST", `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      metadata: { name: "pod-reader" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }],
    });
    await cp.api.must("POST", `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      metadata: { name: "pod-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
      subjects: [{ kind: "ServiceAccount", name: "reader", namespace: ns }],
    });
    const kubeconfig = await cp.mintServiceAccountKubeconfig(ns, "reader");
    const pods = await cp.kubectl(`--kubeconfig=${kubeconfig}`, "get", "pods", "-o", "name");
    assert.equal(pods.trim(), "");
    const denied = await runCommand(
      peerBin("kubectl"),
      [`--kubeconfig=${kubeconfig}`, "get", "secrets"],
      { allowFailure: true },
    );
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/i);

    const token = await cp.mintServiceAccountToken(ns, "reader");
    const api = kubeApi(
      { server: cp.server, caPem: await Deno.readTextFile(cp.caPath) },
      { kind: "token", token },
    );
    try {
      const review = await api.must(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      ) as { status: { userInfo: { username: string } } };
      assert.equal(review.status.userInfo.username, `system:serviceaccount:${ns}:reader`);
    } finally {
      api.close();
    }
  } finally {
    await cp.stop();
  }
});

Deno.test("containerd runs a pod sandbox networked by the reference bridge plugin", async () => {
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    const bridge = uniqueName("hybr");
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
    const subnet = `10.250.${octet}.0/24`;
    const ipamDir = join(tmp, "ipam");
    await Deno.writeTextFile(
      join(confDir, "10-smoke.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: uniqueName("net"),
        plugins: [{
          type: "bridge",
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: ipamDir },
        }],
      }),
    );
    const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: [referencePluginDir()] });
    try {
      const podConfig = join(tmp, "pod.json");
      await Deno.writeTextFile(
        podConfig,
        JSON.stringify({
          metadata: { name: uniqueName("pod"), namespace: "smoke", uid: crypto.randomUUID() },
          log_directory: join(tmp, "logs"),
          linux: { cgroup_parent: ctd.cgroupParent },
        }),
      );
      const podId = (await ctd.crictl("runp", podConfig)).trim();
      const status = JSON.parse(await ctd.crictl("inspectp", "-o", "json", podId));
      assert.equal(status.status.state, "SANDBOX_READY");
      const ip: string = status.status.network.ip;
      assert.ok(ip.startsWith(`10.250.${octet}.`), `pod IP ${ip} not in ${subnet}`);
      // The bridge and its gateway address exist in containerd's namespace, not the host's.
      const addrs = JSON.parse(
        (await runCommand("ip", ["-n", ctd.netnsName, "-j", "addr", "show", "dev", bridge])).stdout,
      ) as { addr_info: { local: string }[] }[];
      assert.ok(addrs[0].addr_info.some((a) => a.local === `10.250.${octet}.1`));
      const onHost = await runCommand("ip", ["link", "show", "dev", bridge], {
        allowFailure: true,
      });
      assert.notEqual(onHost.code, 0);

      await ctd.crictl("stopp", podId);
      await ctd.crictl("rmp", podId);
      assert.equal((await ctd.crictl("pods", "-q")).trim(), "");
      // CNI DEL ran: host-local released the address.
      const leases = [...Deno.readDirSync(ipamDir)].flatMap((net) =>
        [...Deno.readDirSync(join(ipamDir, net.name))].map((f) => f.name)
      );
      assert.ok(!leases.includes(ip), `address ${ip} still allocated`);
    } finally {
      await ctd.stop();
    }
  });
});

Deno.test("containerd accepts an NRI plugin connection", async () => {
  await withTempDir(async (tmp) => {
    const ctd = await startContainerd({
      cniConfDir: tmp,
      cniBinDirs: [referencePluginDir()],
      nri: true,
    });
    try {
      const result = await nriHandshake(ctd.nriSocket, uniqueName("smoke"));
      try {
        assert.equal(result.registerCode, 0);
        assert.equal(result.runtimeName, "containerd");
        assert.equal(result.runtimeVersion, versions().CONTAINERD_VERSION);
        const methods = result.received.map((m) => m.method).filter(Boolean);
        assert.deepEqual(methods, ["Configure", "Synchronize"]);
      } finally {
        result.conn.close();
      }
    } finally {
      await ctd.stop();
    }
  });
});
