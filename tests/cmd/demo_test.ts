import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const hydra = fileURLToPath(new URL("../../bin/hydra", import.meta.url));

async function runHydra(...args: string[]) {
  const out = await new Deno.Command(hydra, { args, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function demoNamespaces(): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir("/var/run/netns")))
      .map((e) => e.name)
      .filter((n) => n.startsWith("hydra-demo-"));
  } catch {
    return [];
  }
}

interface DemoJson {
  demo: string;
  nodes: { name: string; pods: string[] }[];
  networks: { name: string; interface: string }[];
  results: {
    source: string;
    destination: string;
    address: string;
    network: string;
    reachable: boolean;
  }[];
}

Deno.test("hydra demo --json: every pod reaches every other on every network, nothing left", async () => {
  const before = await demoNamespaces();
  const { code, stdout, stderr } = await runHydra("demo", "--json", "--nodes", "2", "--pods", "2");
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as DemoJson;
  const pods = report.nodes.flatMap((n) => n.pods);
  assert.equal(pods.length, 4);
  assert.ok(report.networks.length >= 2);
  // one entry per source pod, destination and network
  assert.equal(report.results.length, report.networks.length * pods.length * (pods.length - 1));
  for (const r of report.results) {
    assert.ok(r.reachable, `${r.source} -> ${r.destination} (${r.address}) on ${r.network}`);
  }
  const addrs = new Set(report.results.map((r) => `${r.network}/${r.address}`));
  assert.equal(addrs.size, report.networks.length * pods.length, "every pod has its own address");
  assert.deepEqual(await demoNamespaces(), before);
  const state = await Deno.stat(`/run/hydra-demo/${report.demo}`).catch(() => undefined);
  assert.equal(state, undefined, "demo state removed");
});

Deno.test("hydra demo --keep leaves the world up and --down removes it", async () => {
  const kept = await runHydra("demo", "--keep", "--nodes", "1", "--pods", "2", "--json");
  try {
    assert.equal(kept.code, 0, kept.stderr);
    const report = JSON.parse(kept.stdout) as DemoJson;
    const names = await demoNamespaces();
    assert.ok(names.some((n) => n.includes(report.demo)), "namespaces kept");
  } finally {
    const down = await runHydra("demo", "--down");
    assert.equal(down.code, 0, down.stderr);
  }
  assert.deepEqual(await demoNamespaces(), []);
});

Deno.test("hydra demo rejects bad options with usage and exit 2", async () => {
  const { code, stderr } = await runHydra("demo", "--nodes", "zero");
  assert.equal(code, 2);
  assert.match(stderr, /--nodes must be a whole number/);
});

Deno.test("hydra doctor --json reports kernel support found in a throwaway namespace", async () => {
  const { code, stdout } = await runHydra("doctor", "--json", "--bin-dir", "/nonexistent-bin");
  const checks = JSON.parse(stdout) as { name: string; status: string }[];
  const byName = new Map(checks.map((c) => [c.name, c.status]));
  for (const kind of ["veth", "bridge", "macvlan", "vxlan"]) {
    assert.equal(byName.get(`link kind ${kind}`), "ok", kind);
  }
  assert.equal(byName.get("hydra in CNI bin dir"), "warn");
  assert.equal(code, checks.some((c) => c.status === "fail") ? 1 : 0);
});
