/**
 * helm, built from its Go module: it reports the pinned version, renders a local chart with values
 * and release data, and installs and uninstalls a release in the test control plane.
 *
 * Needs the built helm peer (`deno task peers`); the install test also the control plane.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { startControlPlane } from "./cluster.ts";
import { runHelm } from "./helm.ts";
import { versions } from "./peers.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

/** A one-template chart: a ConfigMap whose data comes from values, release and capabilities. */
async function writeChart(dir: string): Promise<string> {
  const chart = join(dir, "demo");
  await Deno.mkdir(join(chart, "templates"), { recursive: true });
  await Deno.writeTextFile(
    join(chart, "Chart.yaml"),
    'apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: "1.2.3"\n',
  );
  await Deno.writeTextFile(join(chart, "values.yaml"), "greeting: hello\nnetworks: [a, b]\n");
  await Deno.writeTextFile(
    join(chart, "templates", "configmap.yaml"),
    [
      "apiVersion: v1",
      "kind: ConfigMap",
      "metadata:",
      "  name: {{ .Release.Name }}-config",
      "  namespace: {{ .Release.Namespace }}",
      "data:",
      "  greeting: {{ .Values.greeting | quote }}",
      '  networks: {{ join "," .Values.networks | quote }}',
      "  app: {{ .Chart.AppVersion | quote }}",
      "",
    ].join("\n"),
  );
  return chart;
}

interface ConfigMap {
  kind: string;
  metadata: { name: string; namespace: string };
  data: Record<string, string>;
}

Deno.test("helm reports its pinned version", async () => {
  const out = await runHelm(["version", "--template", "{{ .Version }}"]);
  assert.equal(out.trim(), versions().HELM_VERSION);
});

Deno.test("helm template renders a local chart with values and release data", async () => {
  await withTempDir(async (dir) => {
    const chart = await writeChart(dir);
    const out = await runHelm([
      "template",
      "rel",
      chart,
      "--namespace",
      "team-a",
      "--set",
      "greeting=hi there",
    ]);
    const docs = parseAllDocuments(out).map((d) => d.toJS() as ConfigMap).filter(Boolean);
    assert.equal(docs.length, 1);
    assert.equal(docs[0].kind, "ConfigMap");
    assert.deepEqual(docs[0].metadata, { name: "rel-config", namespace: "team-a" });
    assert.deepEqual(docs[0].data, { greeting: "hi there", networks: "a,b", app: "1.2.3" });
  });
});

Deno.test("helm installs and uninstalls a release in the test control plane", async () => {
  await withTempDir(async (dir) => {
    const chart = await writeChart(dir);
    const cp = await startControlPlane();
    try {
      const ns = uniqueName("ns");
      await cp.createNamespace(ns);
      const kubeconfig = cp.kubeconfigPath;
      await runHelm(["install", "rel", chart, "--namespace", ns, "--wait"], { kubeconfig });
      const cm = (await cp.api.must(
        "GET",
        `/api/v1/namespaces/${ns}/configmaps/rel-config`,
      )) as ConfigMap;
      assert.equal(cm.data.greeting, "hello");
      const releases = JSON.parse(
        await runHelm(["list", "--namespace", ns, "--output", "json"], { kubeconfig }),
      ) as { name: string; status: string }[];
      assert.deepEqual(releases.map((r) => [r.name, r.status]), [["rel", "deployed"]]);
      await runHelm(["uninstall", "rel", "--namespace", ns, "--wait"], { kubeconfig });
      const gone = await cp.api.request("GET", `/api/v1/namespaces/${ns}/configmaps/rel-config`);
      assert.equal(gone.status, 404);
    } finally {
      await cp.stop();
    }
  });
});
