/**
 * Measures what loading the Kubernetes access layer costs a fresh Deno
 * process, the way the meta-CNI pays it once per pod: wall time and peak
 * RSS of `deno run` on a tiny program that imports the client, reads a JSON
 * kubeconfig and builds a client (no request), against an empty program.
 * "cold" runs use a fresh DENO_DIR that shares only the npm package cache
 * (nothing transpiled or analysed yet, nothing downloaded), "warm" runs the
 * shared one. With `--apiserver` it also starts a real control plane and
 * measures a program that reads a pod over TLS (JSON kubeconfig, and the
 * same with a YAML kubeconfig, which loads the YAML parser). Prints JSON.
 *
 *   deno run -A tests/kube/import_cost.ts [runs] [--apiserver]
 *
 * @module
 */

const root = new URL("../../", import.meta.url).pathname;
const runs = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 5);
const withApiserver = Deno.args.includes("--apiserver");
const deno = Deno.execPath();
const sharedNpm = await (async () => {
  const out = await new Deno.Command(deno, { args: ["info", "--json"], stdout: "piped" }).output();
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { npmCache: string }).npmCache;
})();

/** One run under /usr/bin/time: wall ms and max RSS in MiB. */
async function measure(file: string, denoDir?: string): Promise<{ ms: number; rssMiB: number }> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (denoDir) env.DENO_DIR = denoDir;
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", deno, "run", "-A", "--no-prompt", `--config=${root}deno.json`, file],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  const err = new TextDecoder().decode(out.stderr).trim().split("\n");
  if (!out.success) throw new Error(`${file} failed: ${err.join("\n")}`);
  return { ms: Math.round(ms), rssMiB: Math.round(Number(err[err.length - 1]) / 1024 * 10) / 10 };
}

const work = await Deno.makeTempDir({ prefix: "hydra-import-cost-" });
let stopControlPlane: (() => Promise<void>) | undefined;
try {
  const kubeconfig = `${work}/kc.json`;
  await Deno.writeTextFile(
    kubeconfig,
    JSON.stringify({
      "current-context": "c",
      clusters: [{ name: "c", cluster: { server: "http://127.0.0.1:1" } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      users: [{ name: "u", user: { token: "t" } }],
    }),
  );
  const programs: Record<string, string> = {
    empty: `console.log("ok");\n`,
    client: `import { loadKubeconfig } from "${root}kube/kubeconfig.ts";
import { createKubeClient } from "${root}kube/client.ts";
import { getPod } from "${root}kube/objects.ts";
const c = createKubeClient(await loadKubeconfig(${JSON.stringify(kubeconfig)}));
console.log(typeof getPod, c.server);
c.close();
`,
    "kube-mode": `import { loadKubeconfig } from "${root}kube/kubeconfig.ts";
import { createKubeClient } from "${root}kube/client.ts";
import { resolveAttachments, fetchPod } from "${root}kube/networks.ts";
import { networkStatusEntries, mergeNetworkStatus } from "${root}kube/status.ts";
const c = createKubeClient(await loadKubeconfig(${JSON.stringify(kubeconfig)}));
console.log(typeof resolveAttachments, typeof fetchPod, typeof networkStatusEntries, typeof mergeNetworkStatus);
c.close();
`,
  };
  if (withApiserver) {
    const { startControlPlane } = await import("../infra/cluster.ts");
    const { parse } = await import("yaml");
    const cp = await startControlPlane();
    stopControlPlane = () => cp.stop();
    await cp.api.must("POST", "/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "probe", namespace: "default" },
      spec: { containers: [{ name: "main", image: "pause" }] },
    });
    const yamlPath = cp.kubeconfigPath;
    const jsonPath = `${work}/admin.json`;
    await Deno.writeTextFile(jsonPath, JSON.stringify(parse(await Deno.readTextFile(yamlPath))));
    for (const [name, path] of [["get-pod", jsonPath], ["get-pod-yaml", yamlPath]]) {
      programs[name] = `import { loadKubeconfig } from "${root}kube/kubeconfig.ts";
import { createKubeClient } from "${root}kube/client.ts";
import { getPod } from "${root}kube/objects.ts";
const c = createKubeClient(await loadKubeconfig(${JSON.stringify(path)}));
console.log((await getPod(c, "default", "probe")).metadata.uid);
c.close();
`;
    }
  }
  for (const [name, text] of Object.entries(programs)) {
    await Deno.writeTextFile(`${work}/${name}.ts`, text);
  }

  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const report: Record<string, unknown> = { runs, deno: Deno.version.deno };
  for (const name of Object.keys(programs)) {
    const file = `${work}/${name}.ts`;
    const cold: { ms: number; rssMiB: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const dir = `${work}/deno-dir-${name}-${i}`;
      await Deno.mkdir(dir);
      await Deno.symlink(sharedNpm, `${dir}/npm`);
      cold.push(await measure(file, dir));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    await measure(file); // fill the shared cache
    const warm: { ms: number; rssMiB: number }[] = [];
    for (let i = 0; i < runs; i++) warm.push(await measure(file));
    report[name] = {
      coldMs: median(cold.map((r) => r.ms)),
      coldRssMiB: median(cold.map((r) => r.rssMiB)),
      warmMs: median(warm.map((r) => r.ms)),
      warmRssMiB: median(warm.map((r) => r.rssMiB)),
    };
  }
  console.log(JSON.stringify(report, null, 2));
} finally {
  await stopControlPlane?.();
  await Deno.remove(work, { recursive: true });
}
