/**
 * Hostile NetworkAttachmentDefinitions against a real kube-apiserver: whoever
 * may create a NAD names paths a root process on the node uses (where
 * address allocations are written, where logs are appended, which
 * credentials are read) and could name hydra itself with its own bin dir.
 * Each is refused with CNI code 7 naming the NAD and the key, with a
 * Warning Event on the pod; nothing is attached and nothing is created at
 * the path; the same network with its paths under the node's roots works.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { links } from "../meta/harness.ts";
import { eventually, startKubeEnv } from "./harness.ts";
import type { KubeEvent } from "../../kube/objects.ts";

Deno.test("NADs naming paths outside the node's roots, or hydra itself, are refused with a CNI error", async (t) => {
  const env = await startKubeEnv();
  // Where a hostile NAD would make the node write: outside every root the node allows.
  const outside = await Deno.makeTempDir({ prefix: "hydra-nad-outside-" });
  try {
    const cluster = env.bridgeNet("cluster", { isGateway: true });
    await Deno.writeTextFile(`${env.confDir}/10-cluster.conf`, JSON.stringify(cluster.conf));
    const conf = env.metaConf({ clusterNetwork: "cluster" });
    const ok = env.bridgeNet("fine-net");
    const hostile: [string, Record<string, unknown>, RegExp][] = [
      [
        "datadir",
        { ...ok.conf, ipam: { ...(ok.conf.ipam as object), dataDir: `${outside}/ipam` } },
        /ipam\.dataDir ".*ipam" is outside the allowed roots/,
      ],
      [
        "traversal",
        {
          ...ok.conf,
          ipam: { ...(ok.conf.ipam as object), dataDir: `${env.dir}/../../${outside}/up` },
        },
        /ipam\.dataDir .* is outside the allowed roots/,
      ],
      [
        "logfile",
        { ...ok.conf, logFile: `${outside}/hydra.log` },
        /logFile ".*hydra\.log" is outside the allowed roots .* logs paths/,
      ],
      [
        "credentials",
        {
          ...ok.conf,
          ipam: { type: "kube-node", nodeName: env.nodeName, kubeconfig: `${outside}/admin.conf` },
        },
        /ipam\.kubeconfig .* read paths/,
      ],
      [
        "nested",
        { cniVersion: "1.0.0", name: "nested", type: "hydra", binDir: outside, delegates: [] },
        /type "hydra" \(the meta-CNI itself\) cannot be used from the API/,
      ],
    ];
    await env.nad(env.ns, "fine", ok.conf);
    for (const [name, nadConf] of hostile) await env.nad(env.ns, name, nadConf);

    for (const [name, , re] of hostile) {
      await t.step(
        `${name}: CNI code 7 naming the NAD and the key, an Event, nothing made`,
        async () => {
          const pod = await env.createPod(`p-${name}`, { "k8s.v1.cni.cncf.io/networks": name });
          const netns = await env.podNetns();
          const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
          assert.equal(out.code, 1, out.stdout);
          assert.equal(out.json!.code, 7, out.stdout);
          const msg = out.json!.msg as string;
          assert.match(msg, new RegExp(`NetworkAttachmentDefinition ${env.ns}/${name}: `), msg);
          assert.match(msg, re, msg);
          assert.deepEqual([...(await links(netns)).keys()], ["lo"]);
          await eventually("an InvalidNetwork Event", async () => {
            const list = await env.cp.api.must(
              "GET",
              `/api/v1/namespaces/${env.ns}/events`,
            ) as { items: KubeEvent[] };
            return list.items.some((e) =>
              e.involvedObject.name === pod.metadata.name && e.reason === "InvalidNetwork" &&
              e.message.includes(msg.slice(msg.indexOf(": ") + 2))
            );
          });
          const del = await env.cni("DEL", conf, { netns, pod: pod.metadata });
          assert.equal(del.code, 0, del.stdout);
        },
      );
    }

    await t.step("nothing was created outside the roots", async () => {
      const made = [];
      for await (const e of Deno.readDir(outside)) made.push(e.name);
      assert.deepEqual(made, []);
    });

    await t.step("the same network with its paths under the roots attaches", async () => {
      const pod = await env.createPod("p-fine", { "k8s.v1.cni.cncf.io/networks": "fine" });
      const netns = await env.podNetns();
      const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
      assert.equal(out.code, 0, out.stdout);
      assert.deepEqual([...(await links(netns)).keys()].sort(), ["eth0", "lo", "net1"]);
      assert.equal((await env.cni("DEL", conf, { netns, pod: pod.metadata })).code, 0);
    });
  } finally {
    await Deno.remove(outside, { recursive: true }).catch(() => {});
    await env.close();
  }
});
