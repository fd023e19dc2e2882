import assert from "node:assert/strict";
import {
  circleFindings,
  type Graph,
  layerFindings,
  LAYERS,
  nodeLayerFindings,
  rankOf,
  TOP,
  treeGraph,
  treeGraphs,
} from "./check_imports.ts";

function graph(edges: Record<string, string[]>): Graph {
  const g: Graph = new Map();
  for (const [from, to] of Object.entries(edges)) {
    g.set(from, new Set(to));
    for (const t of to) if (!g.has(t)) g.set(t, new Set());
  }
  return g;
}

Deno.test("imports pointing up, sideways or into tests are found; downwards and own-folder are not", () => {
  const g = graph({
    "cni/invoke.ts": ["cni/types.ts", "pkg/log.ts", "engine/builtins.ts"],
    "plugins/bridge.ts": ["cni/invoke.ts", "plugins/links.ts", "ipam/store.ts"],
    "nri/serve.ts": ["route/options.ts", "engine/builtins.ts"],
    "route/testdata.ts": ["tests/helpers/netns.ts", "route/options.ts"],
    "kube/client.ts": ["tests/helpers/netns.ts"],
    "tests/x_test.ts": ["tools/bundle.ts", "main.ts"],
    "cni/x_test.ts": ["engine/builtins.ts"],
  });
  const found = layerFindings(g).map((f) => f.text);
  assert.deepEqual(found, [
    "cni/invoke.ts → engine/builtins.ts: imports a higher layer (engine/)",
    "nri/serve.ts → route/options.ts: imports a sibling on the same layer (route/)",
    "kube/client.ts → tests/helpers/netns.ts: imports a test or tool (tests/)",
  ]);
});

Deno.test("a folder without a layer is reported", () => {
  const g = graph({
    "newthing/a.ts": ["cni/types.ts"],
    "cni/a.ts": ["cni/b.ts"],
  });
  const found = layerFindings(g);
  assert.deepEqual(found.map((f) => f.rule), ["unplaced"]);
  assert.match(found[0].text, /^newthing\/: a folder with no layer/);
});

Deno.test("circles are found whatever their length; a tree without one has none", () => {
  const g = graph({
    "a.ts": ["b.ts"],
    "b.ts": ["c.ts"],
    "c.ts": ["a.ts", "d.ts"],
    "d.ts": [],
    "e.ts": ["e.ts"],
    "f.ts": ["g.ts"],
    "g.ts": ["f.ts"],
  });
  assert.deepEqual(circleFindings(g).map((f) => f.text).sort(), [
    "1 files import each other in a circle: e.ts",
    "2 files import each other in a circle: f.ts, g.ts",
    "3 files import each other in a circle: a.ts, b.ts, c.ts",
  ]);
  assert.deepEqual(
    circleFindings(graph({ "a.ts": ["b.ts"], "b.ts": ["c.ts"] })),
    [],
  );
});

Deno.test("test files and tooling rank above every layer", () => {
  assert.equal(rankOf("tests/infra/cluster.ts"), TOP);
  assert.equal(rankOf("netlink/link_test.ts"), TOP);
  assert.equal(rankOf("nri/testdata.ts"), TOP);
  assert.equal(rankOf("bench/main.ts"), TOP);
  assert.equal(rankOf("main.ts"), LAYERS[LAYERS.length - 1].rank);
  assert.equal(rankOf("nowhere/x.ts"), undefined);
});

Deno.test("the tree's graph holds dynamic and type-only imports, and no circle", async () => {
  const g = await treeGraph();
  // main.ts loads the command line only when it is not a CNI invocation.
  assert.ok(
    g.get("main.ts")?.has("cmd/cli.ts"),
    "main.ts → cmd/cli.ts (dynamic)",
  );
  assert.ok(
    g.get("cmd/cli.ts")?.has("nri/serve.ts"),
    "cmd/cli.ts → nri/serve.ts (dynamic)",
  );
  assert.ok(
    g.get("mod.ts")?.has("cni/types.ts"),
    "mod.ts → cni/types.ts (type re-export)",
  );
  assert.ok(g.size > 300, `${g.size} files`);
  assert.deepEqual(circleFindings(g), []);
});

Deno.test("a node: or npm: module a Node-free entry loads at start is found, with the module importing it", () => {
  const statics = graph({
    "route/main.ts": ["route/a.ts"],
    "route/a.ts": ["pkg/b.ts"],
    "pkg/b.ts": ["node:util"],
    "daemon/node_main.ts": ["pkg/c.ts"],
  });
  assert.deepEqual(
    nodeLayerFindings(statics, ["route/main.ts", "daemon/node_main.ts"]),
    [
      {
        rule: "node-layer",
        text: "route/main.ts loads node:util at start (through pkg/b.ts)",
      },
    ],
  );
});

Deno.test("the long-running roles' entry modules load no node: or npm: module at start", async () => {
  const { statics } = await treeGraphs();
  assert.ok(
    statics.get("pkg/yaml_subset_test.ts")?.has("node:assert/strict"),
    "statics keep node: imports",
  );
  assert.ok(
    !statics.get("main.ts")?.has("cmd/cli.ts"),
    "statics leave dynamic imports out",
  );
  assert.deepEqual(nodeLayerFindings(statics), []);
});
