/**
 * The Helm chart in deploy/helm/hydra renders the plain manifests: for each
 * setup file, `helm template` (the real helm, built from its Go module) with
 * the values selecting it gives the same objects; combined, every object
 * once; the image values reach every container; and what it renders passes
 * server-side dry-run against a real kube-apiserver.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { runHelm } from "../infra/helm.ts";
import { startControlPlane } from "../infra/cluster.ts";
import { CHART_DIR, setupFiles, staleFiles } from "../../tools/helm_chart.ts";
import { repoRoot } from "../install/helpers.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** The values selecting one setup file alone. */
export const SELECT: Record<string, string[]> = {
  "hydra-meta.yaml": ["--set", "mode=meta"],
  "hydra-nri.yaml": ["--set", "mode=nri"],
  "hydra-router.yaml": ["--set", "mode=none", "--set", "router.enabled=true"],
  "hydra-dra.yaml": ["--set", "mode=none", "--set", "dra.enabled=true"],
  "hydra-ipam.yaml": ["--set", "mode=none", "--set", "ipam.enabled=true"],
  "hydra-hybrid.yaml": ["--set", "mode=none", "--set", "hybrid.enabled=true"],
};

/** The objects of a YAML stream by kind/namespace/name; a name twice fails. */
export function objectsOf(text: string, where: string): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const doc of parseAllDocuments(text)) {
    assert.deepEqual(doc.errors, [], where);
    const o = doc.toJSON() as Obj | null;
    if (!o) continue;
    const id = `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
    assert.ok(!out.has(id), `${where}: ${id} twice`);
    out.set(id, o);
  }
  return out;
}

/** `helm template` of the chart with extra arguments. */
export async function helmTemplate(...args: string[]): Promise<string> {
  return await runHelm(["template", "hydra", CHART_DIR, "--namespace", "hydra-system", ...args]);
}

function manifest(file: string): Map<string, Obj> {
  return objectsOf(Deno.readTextFileSync(join(repoRoot, "deploy", file)), file);
}

Deno.test("the chart's templates are generated from the current manifests", async () => {
  assert.deepEqual([...(await staleFiles()).keys()], [], "run deno run -A tools/helm_chart.ts");
  assert.deepEqual(Object.keys(SELECT).sort(), [...await setupFiles()].sort());
});

Deno.test("helm template renders each setup file's objects, and every object once combined", async () => {
  const defaults = objectsOf(await helmTemplate(), "defaults");
  assert.deepEqual(defaults, manifest("hydra-meta.yaml"), "the default values are the meta setup");
  for (const [file, values] of Object.entries(SELECT)) {
    assert.deepEqual(objectsOf(await helmTemplate(...values), file), manifest(file), file);
  }
  const all = objectsOf(
    await helmTemplate(
      "--set",
      "mode=nri",
      "--set",
      "router.enabled=true",
      "--set",
      "dra.enabled=true",
    ),
    "nri + router + dra",
  );
  const union = new Map<string, Obj>();
  for (const file of ["hydra-nri.yaml", "hydra-router.yaml", "hydra-dra.yaml"]) {
    for (const [id, o] of manifest(file)) if (!union.has(id)) union.set(id, o);
  }
  assert.deepEqual(all, union);
  const none = await helmTemplate("--set", "mode=none");
  assert.equal(objectsOf(none, "none").size, 0);
});

Deno.test("the image values reach every container; helm lint is clean", async () => {
  const text = await helmTemplate(
    "--set",
    "mode=meta",
    "--set",
    "router.enabled=true",
    "--set",
    "image.repository=registry.example/hydra",
    "--set",
    "image.tag=9.9.9",
    "--set",
    "image.pullPolicy=Never",
  );
  let containers = 0;
  for (const o of objectsOf(text, "image").values()) {
    for (const c of o.spec?.template?.spec?.containers ?? []) {
      assert.equal(c.image, "registry.example/hydra:9.9.9", c.name);
      assert.equal(c.imagePullPolicy, "Never", c.name);
      containers++;
    }
  }
  assert.equal(containers, 4);
  const lint = await runHelm(["lint", CHART_DIR, "--strict"]);
  assert.match(lint, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

Deno.test("what the chart renders passes server-side dry-run against kube-apiserver", async () => {
  const cp = await startControlPlane();
  try {
    await cp.kubectl("create", "namespace", "hydra-system");
    const variants: [string, string[]][] = [
      ["meta + router", ["--set", "mode=meta", "--set", "router.enabled=true"]],
      ["nri + router + dra", [
        "--set",
        "mode=nri",
        "--set",
        "router.enabled=true",
        "--set",
        "dra.enabled=true",
      ]],
    ];
    for (const [what, values] of variants) {
      const file = join(cp.dir, `helm-${what.replaceAll(/\W+/g, "-")}.yaml`);
      await Deno.writeTextFile(file, await helmTemplate(...values));
      const out = await cp.kubectl("apply", "--dry-run=server", "-f", file);
      const lines = out.trim().split("\n");
      assert.ok(lines.every((l) => l.endsWith("(server dry run)")), `${what}: ${out}`);
      assert.equal(lines.length, objectsOf(await Deno.readTextFile(file), what).size, what);
    }
    assert.equal((await cp.kubectl("get", "daemonsets", "-A", "-o", "name")).trim(), "");
  } finally {
    await cp.stop();
  }
});
