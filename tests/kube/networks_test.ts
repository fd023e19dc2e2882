/**
 * Kubernetes-mode network resolution against a real kube-apiserver: every
 * annotation form, NADs in other namespaces under the isolation rules, the
 * default-network override, `defaultNetworks` and system namespaces, NADs
 * with an empty spec, the seed's older Network objects, Events on the pod
 * for missing or invalid networks, and the reporting written back.
 *
 * Needs the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { startControlPlane } from "../infra/cluster.ts";
import { uniqueName } from "../helpers/netns.ts";
import { createKubeClient, type KubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import {
  type Attachment,
  type KubeModeConfig,
  resolveAttachments,
  resolveSelection,
} from "../../kube/networks.ts";
import { parseNetworkSelection } from "../../kube/selection.ts";
import { getPod, type KubeEvent, nadPath, type Pod, podPath } from "../../kube/objects.ts";
import { reportAttachments } from "../../kube/report.ts";
import { NETWORK_STATUS_ANNOTATION } from "../../kube/status.ts";
import { CniError, ErrorCode } from "../../cni/errors.ts";
import { nadManifest, nodeAgentKubeconfig, podManifest } from "./helpers.ts";

const legacyCrd = new URL("./manifests/legacy-network-crd.yaml", import.meta.url).pathname;

const conf = (name: string, type = "bridge", extra = {}) =>
  JSON.stringify({ cniVersion: "1.0.0", name, type, ...extra });

Deno.test("resolving a pod's networks from the API server, as Multus users expect", async (t) => {
  const cp = await startControlPlane({ manifests: [legacyCrd] });
  const confDir = await Deno.makeTempDir({ prefix: "hydra-kube-confdir-" });
  const clients: KubeClient[] = [];
  try {
    const app = uniqueName("app");
    const other = uniqueName("oth");
    // Pods need a ServiceAccount in their namespace; nothing else creates them here.
    for (const ns of [app, other, "kube-system"]) await cp.createNamespace(ns);
    const admin = createKubeClient(await loadKubeconfig(cp.kubeconfigPath));
    clients.push(admin);
    const agent = createKubeClient(await loadKubeconfig(await nodeAgentKubeconfig(cp, app)));
    clients.push(agent);

    await Deno.writeTextFile(
      `${confDir}/10-cbr0.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "cbr0",
        plugins: [{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }],
      }),
    );
    await Deno.writeTextFile(`${confDir}/20-filenet.conf`, conf("filenet", "macvlan"));
    await Deno.writeTextFile(`${confDir}/30-extra.conf`, conf("extra", "ptp"));
    const nads: [string, string, string | undefined][] = [
      [app, "macvlan-a", JSON.stringify({ cniVersion: "1.0.0", type: "macvlan", master: "eth0" })],
      [
        other,
        "sriov-like",
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "sr",
          plugins: [{ type: "host-device" }, { type: "tuning" }],
        }),
      ],
      [app, "filenet", undefined],
      ["default", "global-net", conf("global-net", "ipvlan")],
      ["kube-system", "cluster-override", conf("override", "ptp")],
      [app, "broken", JSON.stringify({ cniVersion: "1.0.0", name: "broken" })],
    ];
    for (const [ns, name, config] of nads) {
      await admin.create(nadPath(ns, undefined), nadManifest(ns, name, config));
    }
    await admin.create(`/apis/kubernetes-network.cni.cncf.io/v1/namespaces/${app}/networks`, {
      apiVersion: "kubernetes-network.cni.cncf.io/v1",
      kind: "Network",
      metadata: { name: "flannel-old", namespace: app },
      plugin: "flannel",
      args: '[ { "delegate": { "isDefaultGateway": true } } ]',
    });

    const base: KubeModeConfig = {
      clusterNetwork: "cbr0",
      confDir,
      runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 2 }] },
    };
    const makePod = async (
      name: string,
      annotations: Record<string, string>,
      ns = app,
    ): Promise<Pod> => {
      await admin.create(podPath(ns), podManifest(ns, name, annotations));
      return await getPod(agent, ns, name);
    };
    const resolve = (pod: Pod, c: KubeModeConfig = base, command = "ADD") =>
      resolveAttachments(pod, c, agent, {
        command,
        ifName: "eth0",
        containerId: "cid1",
        cniArgs: "K8S_POD_NAMESPACE=x;EXTRA=1",
        pod: {
          namespace: pod.metadata.namespace,
          name: pod.metadata.name,
          uid: pod.metadata.uid!,
          infraContainerId: "cid1",
        },
        host: "node-1",
      });
    const summary = (atts: Attachment[]) =>
      atts.map((a) =>
        `${a.index}:${a.name}@${a.ifName}:${a.source}:${
          a.list.plugins.map((p) => p.type).join("+")
        }`
      );
    const events = async (pod: Pod) =>
      (await admin.list<KubeEvent>(`/api/v1/namespaces/${pod.metadata.namespace}/events`, {
        fieldSelector: `involvedObject.uid=${pod.metadata.uid}`,
      })).items;

    await t.step("comma form: name, ns/name@ifname, a NAD with an empty spec", async () => {
      const pod = await makePod("comma", {
        "k8s.v1.cni.cncf.io/networks": ` macvlan-a, ${other}/sriov-like@data0 ,filenet`,
      });
      const atts = await resolve(pod);
      assert.deepEqual(summary(atts), [
        "0:cbr0@eth0:file:bridge+portmap",
        `1:${app}/macvlan-a@net1:nad:macvlan`,
        `2:${other}/sriov-like@data0:nad:host-device+tuning`,
        `3:${app}/filenet@net3:nad:macvlan`,
      ]);
      assert.equal(atts[1].list.name, "macvlan-a", "a nameless NAD config takes the NAD's name");
      assert.equal(atts[2].list.name, "sr");
      assert.ok(atts[0].isDefault && !atts[1].isDefault);
      assert.equal(
        atts[1].cniArgs,
        `IgnoreUnknown=true;K8S_POD_NAMESPACE=${app};K8S_POD_NAME=comma;K8S_POD_INFRA_CONTAINER_ID=cid1;K8S_POD_UID=${pod.metadata.uid};K8S_POD_NAMESPACE=x;EXTRA=1`,
      );
      // What the meta-CNI received goes to every delegate.
      assert.deepEqual(atts[0].runtimeConfig, base.runtimeConfig);
      assert.deepEqual(atts[3].runtimeConfig, base.runtimeConfig);
      assert.equal(atts.some((a) => a.defaultRoute), false);
    });

    await t.step("JSON form: requests land in runtimeConfig, CNI_ARGS and args.cni", async () => {
      const pod = await makePod("json", {
        "k8s.v1.cni.cncf.io/networks": JSON.stringify([
          {
            name: "macvlan-a",
            interface: "fast0",
            ips: ["10.9.0.5/24"],
            mac: "02:00:00:00:00:05",
            "cni-args": { vlan: 7 },
            "default-route": ["10.9.0.1"],
          },
          {
            name: "global-net",
            namespace: "default",
            portMappings: [{ hostPort: 80, containerPort: 8080 }],
          },
        ]),
      });
      const atts = await resolve(pod);
      assert.deepEqual(atts.map((a) => a.ifName), ["eth0", "fast0", "net2"]);
      assert.deepEqual(atts[1].runtimeConfig, {
        portMappings: [{ hostPort: 1, containerPort: 2 }],
        ips: ["10.9.0.5/24"],
        mac: "02:00:00:00:00:05",
      });
      assert.deepEqual(atts[2].runtimeConfig, {
        portMappings: [{ hostPort: 80, containerPort: 8080 }],
      });
      assert.match(atts[1].cniArgs, /;MAC=02:00:00:00:00:05;IP=10\.9\.0\.5\/24$/);
      assert.deepEqual(atts[1].list.plugins[0].args, { cni: { vlan: 7 } });
      assert.deepEqual(JSON.parse(new TextDecoder().decode(atts[1].list.bytes)).plugins[0].args, {
        cni: { vlan: 7 },
      });
      assert.deepEqual(atts.map((a) => a.defaultRoute?.gateways), [[], ["10.9.0.1"], []]);
      // DEL carries no MAC=/IP= requests.
      const del = await resolve(pod, base, "DEL");
      assert.doesNotMatch(del[1].cniArgs, /MAC=|IP=/);
    });

    await t.step("namespace isolation: own and global namespaces only, with an Event", async () => {
      const isolated = { ...base, namespaceIsolation: true };
      const ok = await makePod("iso-ok", {
        "k8s.v1.cni.cncf.io/networks": "macvlan-a,default/global-net",
      });
      assert.equal((await resolve(ok, isolated)).length, 3);
      const denied = await makePod("iso-denied", {
        "k8s.v1.cni.cncf.io/networks": `macvlan-a,${other}/sriov-like`,
      });
      await assert.rejects(resolve(denied, isolated), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, ErrorCode.InvalidNetworkConfig);
        assert.match(
          e.message,
          new RegExp(
            `element 2: namespace isolation is on: pod in namespace "${app}" may not use network "${other}/sriov-like"`,
          ),
        );
        return true;
      });
      assert.ok(
        (await events(denied)).some((e) =>
          e.reason === "NetworkNotAllowed" && e.type === "Warning"
        ),
      );
      // With the other namespace made global, it is allowed.
      assert.equal(
        (await resolve(denied, { ...isolated, globalNamespaces: `default,${other}` })).length,
        3,
      );
    });

    await t.step("namespace isolation holds for the default-network override too", async () => {
      const isolated = { ...base, namespaceIsolation: true };
      const foreign = await makePod("iso-default", {
        "v1.multus-cni.io/default-network": `${other}/sriov-like`,
      });
      await assert.rejects(resolve(foreign, isolated), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, ErrorCode.InvalidNetworkConfig);
        assert.match(
          e.message,
          new RegExp(
            `v1\\.multus-cni\\.io/default-network.*namespace isolation is on: pod in namespace ` +
              `"${app}" may not use network "${other}/sriov-like"`,
          ),
        );
        return true;
      });
      assert.ok(
        (await events(foreign)).some((e) => e.reason === "NetworkNotAllowed"),
        "a Warning Event tells the pod's owner",
      );
      // The pod's own namespace, and a global one, are allowed.
      const own = await makePod("iso-default-own", {
        "v1.multus-cni.io/default-network": `${app}/macvlan-a`,
      });
      assert.equal((await resolve(own, isolated))[0].name, `${app}/macvlan-a`);
      assert.equal(
        (await resolve(foreign, { ...isolated, globalNamespaces: other }))[0].name,
        `${other}/sriov-like`,
      );
    });

    await t.step("default-network override replaces the cluster network", async () => {
      const pod = await makePod("override", {
        "v1.multus-cni.io/default-network": "cluster-override",
        "k8s.v1.cni.cncf.io/networks": "macvlan-a",
      });
      assert.deepEqual(summary(await resolve(pod)), [
        "0:kube-system/cluster-override@eth0:nad:ptp",
        `1:${app}/macvlan-a@net1:nad:macvlan`,
      ]);
    });

    await t.step("defaultNetworks for every pod except those in system namespaces", async () => {
      const withExtra = { ...base, defaultNetworks: ["extra"] };
      const pod = await makePod("extra", { "k8s.v1.cni.cncf.io/networks": "macvlan-a" });
      assert.deepEqual(summary(await resolve(pod, withExtra)), [
        "0:cbr0@eth0:file:bridge+portmap",
        "1:extra@net1:file:ptp",
        `2:${app}/macvlan-a@net2:nad:macvlan`,
      ]);
      const sys = await makePod("sys", {}, "kube-system");
      assert.deepEqual(summary(await resolve(sys, withExtra)), ["0:cbr0@eth0:file:bridge+portmap"]);
    });

    await t.step("cluster network given as a NAD in the Multus namespace", async () => {
      const pod = await makePod("cluster-nad", {});
      assert.deepEqual(
        summary(await resolve(pod, { ...base, clusterNetwork: "cluster-override" })),
        [
          "0:kube-system/cluster-override@eth0:nad:ptp",
        ],
      );
    });

    await t.step("the seed's annotation and Network objects", async () => {
      const pod = await makePod("legacy", {
        networks: '[{"name":"flannel-old"},{"name":"macvlan-a"}]',
      });
      const atts = await resolve(pod);
      assert.deepEqual(summary(atts), [
        "0:cbr0@eth0:file:bridge+portmap",
        `1:${app}/flannel-old@net1:legacy-network:flannel`,
        `2:${app}/macvlan-a@net2:nad:macvlan`,
      ]);
      assert.deepEqual(atts[1].list.plugins[0].delegate, { isDefaultGateway: true });
    });

    await t.step("missing and invalid NADs: errors name them, Events on the pod", async () => {
      const missing = await makePod("missing", { "k8s.v1.cni.cncf.io/networks": "macvlan-a,nope" });
      await assert.rejects(resolve(missing), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, ErrorCode.InvalidNetworkConfig);
        assert.match(
          e.message,
          new RegExp(
            `cannot find a network-attachment-definition \\(nope\\) in namespace \\(${app}\\)`,
          ),
        );
        return true;
      });
      const ev = (await events(missing)).find((e) => e.reason === "NoNetworkFound");
      assert.ok(ev);
      assert.equal(ev.type, "Warning");
      assert.match(ev.message, /nope/);

      const broken = await makePod("broken", { "k8s.v1.cni.cncf.io/networks": "broken" });
      await assert.rejects(resolve(broken), (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.match(
          e.message,
          new RegExp(`NetworkAttachmentDefinition ${app}/broken spec\\.config`),
        );
        return true;
      });
      assert.ok((await events(broken)).some((e) => e.reason === "InvalidNetwork"));

      const bad = await makePod("bad-annotation", { "k8s.v1.cni.cncf.io/networks": "a/b/c" });
      await assert.rejects(
        resolve(bad),
        (e: unknown) =>
          e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig &&
          /element 1/.test(e.message),
      );
    });

    await t.step("one selection of a running pod, resolved as at creation (hot plug)", async () => {
      const pod = await makePod("later", {});
      const podArgs = {
        namespace: app,
        name: "later",
        uid: pod.metadata.uid!,
        infraContainerId: "cid9",
      };
      const opts = {
        command: "ADD",
        ifName: "eth0",
        containerId: "cid9",
        cniArgs: "IgnoreUnknown=1;K8S_POD_NAME=later",
        pod: podArgs,
      };
      const rules = { confDir, runtimeConfig: base.runtimeConfig };
      const [sel] = parseNetworkSelection(
        JSON.stringify([{
          name: "macvlan-a",
          ips: ["10.1.1.5/24"],
          mac: "02:00:00:00:00:05",
          "cni-args": { vlan: 7 },
        }]),
        app,
      );
      const att = await resolveSelection(
        pod,
        sel,
        {
          ifName: "net4",
          index: 3,
          element: 1,
          legacy: false,
        },
        rules,
        agent,
        opts,
      );
      assert.equal(att.name, `${app}/macvlan-a`);
      assert.equal(att.ifName, "net4");
      assert.ok(!att.isDefault);
      assert.deepEqual((att.list.plugins[0].args as { cni: unknown }).cni, { vlan: 7 });
      assert.deepEqual(att.runtimeConfig, {
        ...base.runtimeConfig,
        ips: ["10.1.1.5/24"],
        mac: "02:00:00:00:00:05",
      });
      assert.match(att.cniArgs, /;MAC=02:00:00:00:00:05;IP=10\.1\.1\.5\/24$/);
      // Nothing is told on the pod: hot plug tells it itself.
      const [missing] = parseNetworkSelection("nope", app);
      await assert.rejects(
        resolveSelection(
          pod,
          missing,
          { ifName: "net5", index: 3, element: 2, legacy: false },
          rules,
          agent,
          opts,
        ),
        /cannot find a network-attachment-definition \(nope\)/,
      );
      assert.equal((await events(pod)).length, 0);
      // The namespace rules of creation hold.
      const [foreign] = parseNetworkSelection(`${other}/sriov-like`, app);
      await assert.rejects(
        resolveSelection(
          pod,
          foreign,
          { ifName: "net5", index: 3, element: 1, legacy: false },
          {
            ...rules,
            namespaceIsolation: true,
          },
          agent,
          opts,
        ),
        /namespace isolation is on/,
      );
      // A network backed by a device: the pod's devices were shared out at its creation.
      const device = nadManifest(app, "vf-net", conf("vf-net", "host-device"));
      await admin.create(nadPath(app, undefined), {
        ...device,
        metadata: {
          ...device.metadata,
          annotations: { "k8s.v1.cni.cncf.io/resourceName": "example.com/vf" },
        },
      });
      const [vf] = parseNetworkSelection("vf-net", app);
      await assert.rejects(
        resolveSelection(
          pod,
          vf,
          { ifName: "net5", index: 3, element: 1, legacy: false },
          rules,
          agent,
          opts,
        ),
        /uses a device of resource "example\.com\/vf": such a network is attached at the pod's creation only/,
      );
      assert.equal((await events(pod)).length, 0);
    });

    await t.step("two networks on one interface name are refused", async () => {
      const pod = await makePod("clash", {
        "k8s.v1.cni.cncf.io/networks": "macvlan-a@net2,filenet",
      });
      await assert.rejects(resolve(pod), /both use interface name "net2"/);
    });

    await t.step(
      "reporting: network-status merged with others' entries, result annotations",
      async () => {
        const pod = await makePod("report", {});
        const podArgs = {
          namespace: app,
          name: "report",
          uid: pod.metadata.uid!,
          infraContainerId: "cid1",
        };
        // The default network's own CNI wrote first (NRI mode).
        await admin.patch(`${podPath(app, "report")}/status`, {
          metadata: {
            annotations: {
              [NETWORK_STATUS_ANNOTATION]:
                '[{"name":"cilium","interface":"eth0","ips":["10.0.0.3"],"default":true,"dns":{}}]',
            },
          },
        });
        const raw = {
          cniVersion: "0.4.0",
          interfaces: [{ name: "net1", mac: "02:00:00:00:00:09", sandbox: "/run/netns/p" }],
          ips: [{ version: "4", address: "10.9.0.9/24", interface: 0 }],
        };
        const result = {
          cniVersion: "1.1.0",
          interfaces: raw.interfaces,
          ips: [{ address: "10.9.0.9/24", interface: 0 }],
        };
        assert.equal(
          await reportAttachments(agent, podArgs, [{
            name: `${app}/macvlan-a`,
            isDefault: false,
            result,
            rawResult: raw,
          }]),
          "written",
        );
        const got = await getPod(admin, app, "report");
        const status = JSON.parse(got.metadata.annotations![NETWORK_STATUS_ANNOTATION]);
        assert.deepEqual(status, [
          { name: "cilium", interface: "eth0", ips: ["10.0.0.3"], default: true, dns: {} },
          {
            name: `${app}/macvlan-a`,
            interface: "net1",
            ips: ["10.9.0.9"],
            mac: "02:00:00:00:00:09",
            dns: {},
          },
        ]);
        assert.deepEqual(
          JSON.parse(got.metadata.annotations![`hydra.clusternet.io.${app}/macvlan-a`]),
          raw,
        );
        // Detaching drops both records; a deleted pod is reported as gone.
        await reportAttachments(agent, podArgs, [], { remove: [`${app}/macvlan-a`] });
        const after = await getPod(admin, app, "report");
        assert.equal(JSON.parse(after.metadata.annotations![NETWORK_STATUS_ANNOTATION]).length, 1);
        assert.equal(
          after.metadata.annotations![`hydra.clusternet.io.${app}/macvlan-a`],
          undefined,
        );
        await admin.delete(podPath(app, "report"), { query: { gracePeriodSeconds: 0 } });
        assert.equal(
          await reportAttachments(agent, podArgs, [{ name: "x", isDefault: true, result }]),
          "pod-gone",
        );
      },
    );
  } finally {
    for (const c of clients) c.close();
    await Deno.remove(confDir, { recursive: true });
    await cp.stop();
  }
});
