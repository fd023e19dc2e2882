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
  networks: { name: string; interface: string; mode: string }[];
  results: {
    source: string;
    destination: string;
    address: string;
    network: string;
    reachable: boolean;
    path?: string;
    expected?: boolean;
  }[];
}

/** The path the hybrid model wants between two ends (pod1 overlay, pod2 underlay, "outside"). */
function hybridPath(a: string, b: string): string | undefined {
  const kind = (p: string) =>
    p === "outside" ? "outside" : p.endsWith("pod1") ? "overlay" : "underlay";
  const node = (p: string) => p.split("-")[0];
  if (kind(a) === "outside") return kind(b) === "overlay" ? undefined : "fabric";
  if (kind(b) === "outside") return kind(a) === "overlay" ? "masqueraded" : "fabric";
  if (node(a) === node(b)) return "local";
  return kind(a) === "underlay" && kind(b) === "underlay" ? "fabric" : "overlay";
}

Deno.test("hydra demo --json: every pod reaches every other on every network, nothing left", async () => {
  const before = await demoNamespaces();
  const { code, stdout, stderr } = await runHydra("demo", "--json", "--nodes", "2", "--pods", "2");
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as DemoJson;
  const pods = report.nodes.flatMap((n) => n.pods);
  assert.equal(pods.length, 4);
  const flat = report.networks.filter((n) => n.mode !== "hybrid");
  assert.ok(flat.length >= 2);
  assert.deepEqual(report.networks.filter((n) => n.mode === "hybrid").map((n) => n.name), [
    "hybrid",
  ]);
  const [flatResults, hybrid] = [
    report.results.filter((r) => r.network !== "hybrid"),
    report.results.filter((r) => r.network === "hybrid"),
  ];
  // one entry per source pod, destination and network
  assert.equal(flatResults.length, flat.length * pods.length * (pods.length - 1));
  for (const r of flatResults) {
    assert.ok(r.reachable, `${r.source} -> ${r.destination} (${r.address}) on ${r.network}`);
  }
  const addrs = new Set(flatResults.map((r) => `${r.network}/${r.address}`));
  assert.equal(addrs.size, flat.length * pods.length, "every pod has its own address");
  // The hybrid network: pods and the outside host, every ordered pair, each on its path.
  assert.equal(hybrid.length, (pods.length + 1) * pods.length);
  for (const r of hybrid) {
    const want = hybridPath(r.source, r.destination);
    const what = `hybrid ${r.source} -> ${r.destination} (${r.address})`;
    assert.equal(r.reachable, want !== undefined, what);
    assert.equal(r.path, want, what);
  }
  assert.deepEqual(await demoNamespaces(), before);
  const state = await Deno.stat(`/run/hydra-demo/${report.demo}`).catch(() => undefined);
  assert.equal(state, undefined, "demo state removed");
});

Deno.test("hydra demo --keep leaves the world up; --down ID removes that demo and no other", async () => {
  const keep = () => runHydra("demo", "--keep", "--nodes", "1", "--pods", "2", "--json");
  const [a, b] = await Promise.all([keep(), keep()]);
  const ids: string[] = [];
  try {
    for (const kept of [a, b]) {
      assert.equal(kept.code, 0, kept.stderr);
      ids.push((JSON.parse(kept.stdout) as DemoJson).demo);
      assert.match(kept.stderr, new RegExp(`demo ${ids.at(-1)}`), "the ID is printed");
    }
    const ofDemo = async (id: string) => (await demoNamespaces()).filter((n) => n.includes(id));
    assert.ok((await ofDemo(ids[0])).length > 0, "namespaces kept");
    const down = await runHydra("demo", "--down", ids[0]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await ofDemo(ids[0]), []);
    assert.ok((await ofDemo(ids[1])).length > 0, "the other demo's namespaces are left");
    const noId = await runHydra("demo", "--down");
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, new RegExp(`kept demos: .*${ids[1]}`));
  } finally {
    for (const id of ids) await runHydra("demo", "--down", id);
  }
  for (const id of ids) {
    assert.deepEqual((await demoNamespaces()).filter((n) => n.includes(id)), []);
  }
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`hydra demo interrupted by ${signal} removes its namespaces and state`, async () => {
    const child = new Deno.Command(hydra, {
      args: ["demo", "--nodes", "2", "--pods", "3"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    let id = "";
    try {
      while (!id) {
        const { value, done } = await reader.read();
        if (done) break;
        stderr += value;
        id = /\[demo\] demo ([0-9a-f]{6})/.exec(stderr)?.[1] ?? "";
      }
      assert.ok(id, stderr);
      // Interrupt while it attaches pods: once its namespaces exist.
      for (let i = 0; i < 100 && !(await demoNamespaces()).some((n) => n.includes(id)); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill(signal);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        stderr += value;
      }
      const status = await child.status;
      assert.equal(status.code, code, stderr);
      assert.match(stderr, new RegExp(`${signal}: removing demo ${id}`));
      assert.deepEqual((await demoNamespaces()).filter((n) => n.includes(id)), [], stderr);
      const state = await Deno.stat(`/run/hydra-demo/${id}`).catch(() => undefined);
      assert.equal(state, undefined, "demo state removed");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      if (id) await runHydra("demo", "--down", id);
    }
  });
}

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

Deno.test("hydra version --help prints the command's help, not the version", async () => {
  const help = await runHydra("version", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: hydra version/);
  const version = await runHydra("version");
  assert.match(version.stdout, /^hydra \d+\.\d+\.\d+/);
  const bad = await runHydra("version", "--bogus");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown option "--bogus"/);
});
