/**
 * Networks and subnets as objects of a real kube-apiserver: the CRDs and
 * the admission policy from deploy/, the real `hydra hybrid controller
 * --once` writing status. Checks what `kubectl get` shows (counts, Ready /
 * Refused with the reason), and that a subnet in use can neither change
 * kind nor be deleted until its addresses are released.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../infra/cluster.ts";
import { createKubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { networksFromApi } from "../../hybridnet/api.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import { hydraBin } from "./world.ts";
import { run } from "../helpers/netns.ts";

const deploy = (f: string) => fileURLToPath(new URL(`../../deploy/${f}`, import.meta.url));

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function subnet(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "hydra.clusternet.io/v1alpha1",
    kind: "Subnet",
    metadata: { name },
    spec: { network: "hy", ...spec },
  });
}

Deno.test({
  name:
    "hybrid objects: counts and refusals in kubectl get; a subnet in use keeps its kind and stays",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cp = await startControlPlane();
    const apply = async (yaml: string) => {
      const f = await Deno.makeTempFile({ dir: cp.dir, suffix: ".json" });
      await Deno.writeTextFile(f, yaml);
      return await cp.kubectl("apply", "-f", f);
    };
    const controller = () =>
      run(hydraBin, "hybrid", "controller", "--once", "--kubeconfig", cp.kubeconfigPath);
    try {
      await cp.kubectl("apply", "-f", deploy("crds/hybrid-networks.yaml"));
      await cp.kubectl("apply", "-f", deploy("hybrid-admission.yaml"));
      await cp.kubectl("apply", "-f", deploy("crds/address-pools.yaml"));
      await waitFor("the CRDs", async () => (await cp.kubectl("get", "subnets")) !== undefined);
      await apply(JSON.stringify({
        apiVersion: "hydra.clusternet.io/v1alpha1",
        kind: "Network",
        metadata: { name: "hy" },
        spec: { mode: "hybrid", vni: 7000, uplink: "br-fab" },
      }));
      await apply(subnet("ov", { kind: "overlay", cidr: "10.250.0.0/16" }));
      await apply(subnet("fab", {
        kind: "underlay",
        cidr: "192.168.50.0/24",
        gateway: "192.168.50.1",
        start: "192.168.50.64",
        end: "192.168.50.191",
        excludes: ["192.168.50.100/30"],
      }));
      // Created later, so the older "ov" keeps the addresses.
      await new Promise((r) => setTimeout(r, 1100));
      await apply(
        subnet("clash", { kind: "underlay", cidr: "10.250.128.0/24", gateway: "10.250.128.1" }),
      );
      // An underlay subnet without its gateway is refused by the API server itself.
      await assert.rejects(
        apply(subnet("nogw", { kind: "underlay", cidr: "172.16.0.0/24" })),
        /an underlay subnet needs the fabric's gateway/,
      );
      await cp.createNamespace("apps");
      const status = JSON.stringify([
        { name: "default", interface: "eth0", ips: ["10.244.1.5"] },
        { name: "apps/hy", interface: "net1", ips: ["192.168.50.66"] },
      ]);
      await apply(JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: "p1",
          namespace: "apps",
          annotations: { "k8s.v1.cni.cncf.io/network-status": status },
        },
        spec: { containers: [{ name: "c", image: "pause" }] },
      }));
      // An address the cluster IPAM recorded (as hydra-pool writes it) counts too.
      await waitFor(
        "the AddressBlock CRD",
        async () => (await cp.kubectl("get", "addressblocks")) !== undefined,
      );
      await apply(JSON.stringify({
        apiVersion: "hydra.clusternet.io/v1alpha1",
        kind: "AddressBlock",
        metadata: { name: "fab.192.168.50.64-28" },
        spec: {
          network: "fab",
          cidr: "192.168.50.64/28",
          node: "node1",
          allocations: [{ ip: "192.168.50.70", pod: "apps/p2", podUID: "u2" }],
        },
      }));
      await controller();

      const table = await cp.kubectl("get", "subnets");
      const rows = Object.fromEntries(
        table.trim().split("\n").slice(1).map((l) => {
          const f = l.trim().split(/\s+/);
          return [f[0], f.slice(1, 8).join(" ")];
        }),
      );
      assert.match(table, /NAME\s+NETWORK\s+KIND\s+CIDR\s+TOTAL\s+USED\s+AVAILABLE\s+STATUS/);
      assert.equal(rows.ov, "hy overlay 10.250.0.0/16 65534 0 65534 Ready");
      assert.equal(rows.fab, "hy underlay 192.168.50.0/24 124 2 122 Ready");
      assert.equal(rows.clash, "hy underlay 10.250.128.0/24 0 0 0 Refused");
      const clash = JSON.parse(await cp.kubectl("get", "subnet", "clash", "-o", "json"));
      assert.equal(clash.status.reason, "Overlap");
      assert.match(clash.status.message, /overlaps subnet ov \(10\.250\.0\.0\/16\) of network hy/);
      // The router's view of the objects: the refused subnet is left out, as its status says.
      const client = createKubeClient(await loadKubeconfig(cp.kubeconfigPath));
      try {
        const routed = await networksFromApi(client);
        assert.deepEqual(routed.map((n) => [n.name, n.vni, n.subnets.map((s) => s.name).sort()]), [
          ["hy", 7000, ["fab", "ov"]],
        ]);
      } finally {
        client.close();
      }
      const nets = await cp.kubectl("get", "networks");
      assert.match(nets, /NAME\s+MODE\s+VNI\s+DEFAULT\s+SUBNETS\s+TOTAL\s+USED\s+AVAILABLE/);
      assert.match(nets, /\nhy\s+hybrid\s+7000\s+overlay\s+2\s+65658\s+2\s+65656\s/);

      // In use: the kind stays, and the subnet cannot be deleted.
      await assert.rejects(
        cp.kubectl("patch", "subnet", "fab", "--type=merge", "-p", '{"spec":{"kind":"overlay"}}'),
        /addresses in use; its kind and cidr cannot change/,
      );
      await waitFor("the admission policy", async () => {
        try {
          await cp.kubectl("delete", "subnet", "fab", "--dry-run=server");
          return false;
        } catch (err) {
          return /subnet fab has 2 addresses in use/.test((err as Error).message);
        }
      });
      await assert.rejects(cp.kubectl("delete", "subnet", "fab"), /has 2 addresses in use/);
      // Unused, the kind may change.
      await cp.kubectl(
        "patch",
        "subnet",
        "ov",
        "--type=merge",
        "-p",
        '{"spec":{"kind":"underlay","gateway":"10.250.0.1"}}',
      );

      // Released: counts follow, and the subnet may go.
      await cp.kubectl("delete", "pod", "-n", "apps", "p1", "--grace-period=0", "--force");
      await cp.kubectl("delete", "addressblock", "fab.192.168.50.64-28");
      await waitFor(
        "the pod to go",
        async () => !(await cp.kubectl("get", "pods", "-n", "apps", "-o", "name")).trim(),
      );
      await controller();
      assert.match(
        await cp.kubectl("get", "subnet", "fab"),
        /fab\s+hy\s+underlay\s+192\.168\.50\.0\/24\s+124\s+0\s+124\s+Ready/,
      );
      await cp.kubectl("delete", "subnet", "fab");

      // The long-running controller: its endpoint says ready and what it counts.
      const sock = `${cp.dir}/hybrid-controller.sock`;
      const daemon = new Deno.Command(hydraBin, {
        args: [
          "hybrid",
          "controller",
          "--kubeconfig",
          cp.kubeconfigPath,
          "--interval",
          "1",
          "--health-addr",
          `unix:${sock}`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const ep = { transport: "unix" as const, path: sock };
        await waitFor(
          "the controller to be ready",
          async () => (await getFromEndpoint(ep, "/readyz")).status === 200,
        );
        const metrics = (await getFromEndpoint(ep, "/metrics")).body;
        assert.match(metrics, /hydra_hybrid_subnets\{phase="Refused"\} 1\n/);
        assert.match(metrics, /hydra_hybrid_subnet_addresses\{subnet="ov",state="total"\} 65533\n/);
      } finally {
        daemon.kill("SIGTERM");
        assert.equal((await daemon.status).code, 0);
      }
    } finally {
      await cp.stop();
    }
  },
});
