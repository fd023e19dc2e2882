/**
 * hydra-pool on the NRI path, end to end: a real containerd, `hydra nri
 * serve --kubeconfig` and a real API server holding hydra's AddressPool and
 * AddressBlock objects. Two Pod objects select a NetworkAttachmentDefinition
 * whose IPAM is hydra-pool (one asks for a static address); the sandboxes
 * `crictl runp` makes for them get net1 with distinct addresses of the
 * range, each recorded in the API for that pod (name and UID); `crictl
 * stopp`/`rmp` release it.
 *
 * Needs root, the built peers (tests/infra/build-peers.sh) and the control
 * plane binaries.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { apiIntoNetns, jsonKubeconfig } from "../meta_kube/api_access.ts";
import { eventually, type KubeEnv, startKubeEnv } from "../meta_kube/harness.ts";
import { extraLinks, type NriWorld, v4, withNriWorld } from "./serve_world.ts";
import type { Pod } from "../../kube/objects.ts";
import { type Block, parseBlock } from "../../ipam/pool/block.ts";
import { type AddressBlock, blockPath } from "../../ipam/pool/objects.ts";
import { REPO_ROOT } from "../cni/helpers.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const POOL_CRDS = `${REPO_ROOT}/deploy/crds/address-pools.yaml`;

/** `crictl runp` of a sandbox standing for the Pod object `p` (same namespace, name, UID). */
async function runPodSandbox(w: NriWorld, env: KubeEnv, p: Pod, networks: string) {
  const config = join(w.tmp, `${p.metadata.name}.json`);
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      metadata: { name: p.metadata.name, namespace: env.ns, uid: p.metadata.uid },
      annotations: { [NETWORKS]: networks },
      log_directory: join(w.tmp, "logs", p.metadata.name),
      linux: { cgroup_parent: w.ctd.cgroupParent },
    }),
  );
  return (await w.ctd.crictl("runp", config)).trim();
}

/** Every allocation of the network `key`, as the API holds them. */
async function allocations(env: KubeEnv, key: string) {
  const list = (await env.cp.api.must("GET", blockPath())) as { items: AddressBlock[] };
  return list.items.map(parseBlock).filter((b: Block) => b.network === key).flatMap((b) => [
    ...b.allocations.values(),
  ]);
}

Deno.test({
  name: "nri serve: a NAD with hydra-pool IPAM gives each pod an address recorded in the API",
  async fn() {
    const env = await startKubeEnv();
    try {
      await env.cp.kubectl("apply", "-f", POOL_CRDS);
      await eventually("hydra's CRDs served", async () => {
        const res = await env.cp.api.request("GET", blockPath());
        return res.status === 200;
      });
      // The first pod waits for the pool's block to be claimed in the API: the runtime gets the
      // request timeout docs/runtimes.md asks for, not containerd's 2 s default.
      await withNriWorld(async (w) => {
        const server = await apiIntoNetns(w.ctd.netnsName, env.cp.server);
        const kubeconfig = await jsonKubeconfig(
          env.kubeconfigHost,
          join(w.tmp, "nri.kubeconfig"),
          server,
        );
        // hydra-pool's own access (in a cluster: the installer's kubeconfig, bound to the
        // hydra-pool ClusterRole; deploy_test checks those rights). Here: the admin's.
        const poolKubeconfig = await jsonKubeconfig(
          env.cp.kubeconfigPath,
          join(w.tmp, "pool.kubeconfig"),
          server,
        );
        const red = JSON.parse(await Deno.readTextFile(join(w.confDir, "red.conf")));
        const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
        const prefix = `10.249.${octet}.`;
        const network = uniqueName("pool");
        await env.nad(env.ns, "pool", {
          cniVersion: "1.1.0",
          name: "pool",
          type: "hydra-macvlan",
          master: red.master,
          mode: "bridge",
          ipam: {
            type: "hydra-pool",
            range: `${prefix}0/24`,
            exclude: [`${prefix}0/28`],
            network_name: network,
            kubeconfig: poolKubeconfig,
            daemonSocket: "",
            nodeName: env.nodeName,
          },
        });
        const staticSelection = JSON.stringify([{ name: "pool", ips: [`${prefix}77/24`] }]);
        const a = await env.createPod(uniqueName("pa"), { [NETWORKS]: "pool" });
        const b = await env.createPod(uniqueName("pb"), { [NETWORKS]: staticSelection });
        // The NAD's kubeconfig lives in the test's folder, outside the default roots a NAD's
        // paths are confined to.
        const hydra = await w.startHydra([
          `--kubeconfig=${kubeconfig}`,
          `--nad-path-roots=${JSON.stringify({ read: [w.tmp] })}`,
        ]);
        const idA = await runPodSandbox(w, env, a, "pool");
        const idB = await runPodSandbox(w, env, b, staticSelection);

        const net1 = async (id: string) => {
          const links = extraLinks(await w.addrs(await w.netnsOf(id)));
          assert.deepEqual([...links.keys()], ["net1"]);
          return v4(links.get("net1"));
        };
        const [addrA] = await net1(idA);
        assert.ok(addrA?.startsWith(prefix) && addrA.endsWith("/24"), `net1 of a: ${addrA}`);
        const lastOctet = Number(addrA.split("/")[0].split(".")[3]);
        assert.ok(lastOctet >= 16, `${addrA} is not excluded`);
        assert.deepEqual(await net1(idB), [`${prefix}77/24`], "the static address asked for");

        const held = await allocations(env, network);
        const byPod = (p: Pod) => held.filter((r) => r.pod === `${env.ns}/${p.metadata.name}`);
        assert.deepEqual(byPod(a).map((r) => [r.ip, r.podUID]), [
          [addrA.split("/")[0], a.metadata.uid],
        ]);
        assert.deepEqual(byPod(b).map((r) => [r.ip, r.podUID]), [
          [`${prefix}77`, b.metadata.uid],
        ]);
        assert.equal(held.length, 2);

        await w.ctd.crictl("stopp", idA);
        await w.ctd.crictl("rmp", idA);
        assert.deepEqual(
          (await allocations(env, network)).map((r) => r.ip),
          [`${prefix}77`],
          "a's address is released, b's stays",
        );
        await w.ctd.crictl("stopp", idB);
        await w.ctd.crictl("rmp", idB);
        assert.deepEqual(await allocations(env, network), []);
        assert.equal(await hydra.terminate(), 0);
      }, { nriRequestTimeout: "5s" });
    } finally {
      await env.close();
    }
  },
});
