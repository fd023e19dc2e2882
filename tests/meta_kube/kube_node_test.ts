/**
 * The kube-node IPAM against a real kube-apiserver, under the reference
 * bridge plugin exec'd in a node namespace: ranges from the Node's
 * spec.podCIDRs (dual stack) and from a per-network Node annotation,
 * `ipv4-namespaces`, the Node read once per TTL from a file cache, through
 * the node daemon, clear errors for a missing annotation or missing
 * podCIDRs, CNI code 11 when the API is away and nothing is cached (a
 * cached copy is used when there is one), and DEL needing no API at all.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { addresses, links } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { type KubeEnv, startKubeEnv } from "./harness.ts";

async function addrs(netns: TestNetns, ifName: string): Promise<string[]> {
  return addresses((await links(netns)).get(ifName)).sort();
}

/** Gives the world's Node (made bare with the node's identity) its pod CIDRs and annotations. */
async function createNode(env: KubeEnv, podCIDRs: string[], annotations = {}) {
  const path = `/api/v1/nodes/${env.nodeName}`;
  const node = await env.cp.api.must("GET", path) as {
    metadata: { annotations?: Record<string, string> };
    spec?: Record<string, unknown>;
  };
  node.metadata.annotations = { ...node.metadata.annotations, ...annotations };
  node.spec = { ...node.spec, podCIDR: podCIDRs[0], podCIDRs };
  await env.cp.api.must("PUT", path, node);
}

async function annotate(env: KubeEnv, key: string, value: string) {
  const path = `/api/v1/nodes/${env.nodeName}`;
  const node = await env.cp.api.must("GET", path) as {
    metadata: { annotations?: Record<string, string> };
  };
  node.metadata.annotations = { ...node.metadata.annotations, [key]: value };
  await env.cp.api.must("PUT", path, node);
}

Deno.test("kube-node: ranges from the Node, cached, through the daemon or the API", async (t) => {
  const env = await startKubeEnv();
  const bridge = `${env.referenceBin}/bridge`;
  try {
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
    const podCIDRs = [`10.253.${octet}.0/24`, `fd00:253:${octet.toString(16)}::/120`];
    const blueKey = "example.com/blue-cidrs";
    await createNode(env, podCIDRs, { [blueKey]: `10.254.${octet}.0/26,fd00:254::/120` });
    const dataDir = `${env.dir}/kn`;
    const net = (name: string, ipam: Record<string, unknown>) => ({
      cniVersion: "1.0.0",
      name,
      type: "bridge",
      bridge: `kn${name}${octet}`.slice(0, 15),
      ipam: {
        type: "kube-node",
        nodeName: env.nodeName,
        kubeconfig: env.kubeconfigNode,
        daemonSocket: "",
        dataDir,
        apiTimeout: 2,
        ...ipam,
      },
    });
    const pod = (namespace: string) => ({ namespace, name: "p", uid: "u" });

    await t.step("spec.podCIDRs: one address per family, released on DEL", async () => {
      const conf = net("main", {});
      const netns = await env.podNetns();
      const out = await env.cni("ADD", conf, { netns, program: bridge, pod: pod(env.ns) });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      const got = await addrs(netns, "eth0");
      assert.equal(got.length, 2, `${got}`);
      assert.ok(got.some((a) => a.startsWith(`10.253.${octet}.`) && a.endsWith("/24")));
      assert.ok(got.some((a) => a.startsWith(`fd00:253:`) && a.endsWith("/120")));
      const del = await env.cni("DEL", conf, { netns, program: bridge, pod: pod(env.ns) });
      assert.equal(del.code, 0, del.stdout);
      const left = [...Deno.readDirSync(`${dataDir}/main`)].map((e) => e.name)
        .filter((n) => n !== "lock" && !n.startsWith("last_reserved_ip"));
      assert.deepEqual(left, []);
    });

    await t.step("an annotation per network, and ipv4-namespaces", async () => {
      const conf = net("blue", { annotation: blueKey, "ipv4-namespaces": [env.ns] });
      const inNs = await env.podNetns();
      const out = await env.cni("ADD", conf, { netns: inNs, program: bridge, pod: pod(env.ns) });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      const got = await addrs(inNs, "eth0");
      assert.ok(got.some((a) => a.startsWith(`10.254.${octet}.`) && a.endsWith("/26")), `${got}`);
      const elsewhere = await env.podNetns();
      const out2 = await env.cni("ADD", conf, {
        netns: elsewhere,
        program: bridge,
        pod: pod(env.other),
      });
      assert.equal(out2.code, 0, out2.stdout);
      const got2 = await addrs(elsewhere, "eth0");
      assert.deepEqual(got2.map((a) => a.includes(":")), [true], `${got2}`);
      for (const [netns, p] of [[inNs, pod(env.ns)], [elsewhere, pod(env.other)]] as const) {
        assert.equal((await env.cni("DEL", conf, { netns, program: bridge, pod: p })).code, 0);
      }
    });

    await t.step("the Node is read once per TTL", async () => {
      const key = "example.com/ttl-cidrs";
      await annotate(env, key, `10.251.${octet}.0/24`);
      const conf = net("ttl", { annotation: key, nodeCacheTTL: 2 });
      const first = await env.podNetns();
      assert.equal((await env.cni("ADD", conf, { netns: first, program: bridge })).code, 0);
      assert.ok((await addrs(first, "eth0"))[0].startsWith(`10.251.${octet}.`));
      await annotate(env, key, `10.250.${octet}.0/24`);
      const second = await env.podNetns();
      assert.equal((await env.cni("ADD", conf, { netns: second, program: bridge })).code, 0);
      assert.ok(
        (await addrs(second, "eth0"))[0].startsWith(`10.251.${octet}.`),
        "read again within the TTL",
      );
      await new Promise((r) => setTimeout(r, 2_200));
      const third = await env.podNetns();
      const out = await env.cni("ADD", conf, { netns: third, program: bridge });
      // The new range is another subnet on the same bridge: the plugin adds it next to the old.
      assert.equal(out.code, 0, out.stdout);
      assert.ok((await addrs(third, "eth0"))[0].startsWith(`10.250.${octet}.`));
      for (const netns of [first, second, third]) {
        assert.equal((await env.cni("DEL", conf, { netns, program: bridge })).code, 0);
      }
    });

    await t.step("through the node daemon, with no kubeconfig of its own", async () => {
      const daemon = await env.startDaemon();
      try {
        // Its own store, so no Node is in the file cache yet.
        const conf = net("viad", {
          kubeconfig: undefined,
          daemonSocket: daemon.socket,
          dataDir: `${dataDir}-viad`,
        });
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns, program: bridge });
        assert.equal(out.code, 0, out.stdout + out.stderr);
        assert.ok((await addrs(netns, "eth0")).some((a) => a.startsWith(`10.253.${octet}.`)));
        assert.match(await daemon.metrics(), /hydra_daemon_reads_total\{source="cache"\} 1\n/);
        assert.equal((await env.cni("DEL", conf, { netns, program: bridge })).code, 0);
      } finally {
        assert.equal(await daemon.stop(), 0);
      }
    });

    await t.step("clear errors: no such annotation, not a CIDR, no such Node", async () => {
      // The bridge plugin leaves its veth behind when IPAM fails: a namespace per attempt.
      let netns = await env.podNetns();
      const out = await env.cni("ADD", net("noann", { annotation: "example.com/nothing" }), {
        netns,
        program: bridge,
      });
      assert.equal(out.json!.code, 7, out.stdout);
      assert.match(out.json!.msg as string, new RegExp(`${env.nodeName}.*example.com/nothing`));
      await annotate(env, "example.com/junk", "10.1.2.3/33");
      netns = await env.podNetns();
      const out2 = await env.cni("ADD", net("junk", { annotation: "example.com/junk" }), {
        netns,
        program: bridge,
      });
      assert.equal(out2.json!.code, 7, out2.stdout);
      assert.match(out2.json!.msg as string, /10\.1\.2\.3\/33/);
      netns = await env.podNetns();
      const out3 = await env.cni("ADD", net("nonode", { nodeName: "no-such-node" }), {
        netns,
        program: bridge,
      });
      assert.equal(out3.json!.code, 7, out3.stdout);
      assert.match(out3.json!.msg as string, /no-such-node/);
    });

    await t.step(
      "API away: code 11 with nothing cached, the cached Node otherwise; DEL needs no API",
      async () => {
        const cached = net("main", { nodeCacheTTL: 0 });
        const fresh = {
          ...net("fresh", {}),
          ipam: { ...net("fresh", {}).ipam, dataDir: `${dataDir}-2` },
        };
        const a = await env.podNetns();
        const b = await env.podNetns();
        await env.stopApi();
        try {
          const out = await env.cni("ADD", fresh, { netns: a, program: bridge });
          assert.equal(out.json!.code, 11, out.stdout);
          const out2 = await env.cni("ADD", cached, { netns: b, program: bridge });
          assert.equal(out2.code, 0, out2.stdout);
          assert.equal((await env.cni("DEL", cached, { netns: b, program: bridge })).code, 0);
          assert.deepEqual([...(await links(b)).keys()], ["lo"]);
        } finally {
          await env.startApi();
        }
      },
    );
  } finally {
    await env.close();
  }
});
