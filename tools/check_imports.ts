/**
 * The import rules of this tree, checked (part of `deno task check`):
 *
 * 1. **Imports point downwards.** Every production folder has a layer
 *    ({@link LAYERS}); a file may import files of its own folder and of
 *    folders on lower layers only, never a sibling on the same layer nor
 *    anything above. Tests (`*_test.ts` and `testdata.ts` anywhere, and
 *    `tests/`), `bench/` and `tools/` sit above everything: they may import
 *    any module, and no production module may import them.
 * 2. **No circles.** No file reaches itself through its imports (static,
 *    dynamic and type-only imports alike).
 * 3. **No Node layer in the long-running roles.** What the modules of
 *    {@link NODE_FREE} load at start (their static imports, followed) holds
 *    no `node:` or `npm:` module: the first one brings up Deno's Node
 *    layer, 9 ms of CPU and 5–6 MiB more at start (bench/README.md,
 *    "Memory: collections"). A dynamic import loaded on demand (a heap snapshot,
 *    the YAML parser for what the subset reader declines) is allowed.
 *
 * The graph is Deno's own (`deno info --json`) over one generated root that
 * imports every `.ts` file of the tree, so each file is an entry point and
 * a dynamic `import("…")` with a literal specifier (how the roles and
 * plugins are loaded on demand) is an edge like any other.
 *
 *   deno run -A tools/check_imports.ts          check; list what breaks a rule, exit 1 if any
 *   deno run -A tools/check_imports.ts --table  print the layer table
 *
 * @module
 */

/** A layer: its folders and the rank they share (higher may import lower). */
interface Layer {
  rank: number;
  folders: readonly string[];
  what: string;
}

/**
 * The layers, bottom to top. Folders on one layer are siblings and may not
 * import each other. A production folder missing here fails the check, so
 * a new folder has to be placed.
 */
export const LAYERS: readonly Layer[] = [
  {
    rank: 0,
    folders: ["pkg", "ipaddr"],
    what: "leaf helpers (async, log, version, fs, config fields, metrics and HTTP " +
      "endpoint); address arithmetic",
  },
  {
    rank: 1,
    folders: ["netlink"],
    what: "rtnetlink over FFI, network namespaces",
  },
  {
    rank: 2,
    folders: ["cni", "kubelet", "nft"],
    what: "the CNI contract as a library: types, skel, invocation (built-ins injected); " +
      "the kubelet's local gRPC APIs; nftables transactions through libnftables",
  },
  {
    rank: 3,
    folders: ["cri", "kube"],
    what: "the container runtime's CRI socket; Kubernetes client, informers, selection, status",
  },
  {
    rank: 4,
    folders: ["daemonclient"],
    what: "node daemon client, protocol, forwarder",
  },
  {
    rank: 5,
    folders: ["ipam", "hybridnet"],
    what: "IPAM plugins; the hybrid network model (subnets, validation, a pod's placement) " +
      "shared by the hybrid plugin, router and controller",
  },
  { rank: 6, folders: ["plugins"], what: "built-in interface plugins" },
  {
    rank: 7,
    folders: ["engine"],
    what: "attachment engine (meta-CNI), built-in table",
  },
  {
    rank: 8,
    folders: ["drasandbox", "hotplug"],
    what: "what the roles share above the engine: a pod sandbox's DRA devices (state shared " +
      "with the driver, NIC moves, the NRI hook); hot plug of running pods' networks",
  },
  {
    rank: 9,
    folders: ["daemon", "dra", "install", "ipam_controller", "nri", "policy", "route"],
    what: "roles: node daemon, DRA driver, installer, IPAM controller, NRI plugin, network " +
      "policy, router",
  },
  {
    rank: 10,
    folders: ["hybrid"],
    what: "hybrid overlay/underlay networks: model and validation, router, controller " +
      "(built on the router's parts)",
  },
  {
    rank: 11,
    folders: ["cmd"],
    what: "entry points: process dispatch, command line",
  },
  { rank: 12, folders: ["."], what: "main.ts, mod.ts" },
];

/** Folders (first path segment) whose files are tests and tooling: above every layer. */
const TOP_FOLDERS: ReadonlySet<string> = new Set(["tests", "bench", "tools"]);

/** Tests and their fixtures beside the code: `x_test.ts`, `testdata.ts`. */
const TEST_FILE = /(^|\/)([^/]+_test|testdata)\.ts$/;

/** What the walk skips. */
const SKIP: ReadonlySet<string> = new Set([
  ".git",
  ".cache",
  "node_modules",
  "dist",
]);

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The rank of a tree-relative file; TOP for tests and tooling, undefined for an unplaced folder. */
export function rankOf(
  file: string,
  layers: readonly Layer[] = LAYERS,
): number | undefined {
  const slash = file.indexOf("/");
  const folder = slash < 0 ? "." : file.slice(0, slash);
  if (TOP_FOLDERS.has(folder) || TEST_FILE.test(file)) return TOP;
  return layers.find((l) => l.folders.includes(folder))?.rank;
}

/** The rank of tests and tooling. */
export const TOP = Number.MAX_SAFE_INTEGER;

function folderOf(file: string): string {
  const slash = file.indexOf("/");
  return slash < 0 ? "." : file.slice(0, slash);
}

/** A file-level import graph: file → the files it imports (tree-relative paths). */
export type Graph = Map<string, Set<string>>;

/** One broken rule, as a line to print. */
export interface Finding {
  rule: "layer" | "circle" | "unplaced" | "node-layer";
  text: string;
}

/** Rule 1 over `graph`: every import that does not point downwards (or is not placed). */
export function layerFindings(
  graph: Graph,
  layers: readonly Layer[] = LAYERS,
): Finding[] {
  const out: Finding[] = [];
  const unplaced = new Set<string>();
  for (const [from, targets] of graph) {
    const rank = rankOf(from, layers);
    if (rank === undefined) {
      unplaced.add(folderOf(from));
      continue;
    }
    for (const to of targets) {
      if (!to.endsWith(".ts") || folderOf(to) === folderOf(from)) continue;
      const toRank = rankOf(to, layers);
      if (toRank === undefined) {
        unplaced.add(folderOf(to));
        continue;
      }
      if (toRank < rank || (toRank === TOP && rank === TOP)) continue;
      const edge = `${from} → ${to}`;
      const how = toRank === TOP
        ? "a test or tool"
        : toRank === rank
        ? "a sibling on the same layer"
        : "a higher layer";
      out.push({
        rule: "layer",
        text: `${edge}: imports ${how} (${folderOf(to)}/)`,
      });
    }
  }
  for (const folder of [...unplaced].sort()) {
    out.push({
      rule: "unplaced",
      text: `${folder}/: a folder with no layer (add it to LAYERS in tools/check_imports.ts)`,
    });
  }
  return out;
}

/**
 * The entry modules of rule 3: the one executable's entry point (every CNI
 * exec starts there) and the long-running roles that need nothing of
 * Node's. `nri serve` is not among them: its ttrpc and protobuf packages
 * are npm's.
 */
export const NODE_FREE: readonly string[] = [
  "main.ts",
  "daemon/node_main.ts",
  "route/main.ts",
  "hybrid/main.ts",
  "policy/main.ts",
  "ipam_controller/main.ts",
];

/** Rule 3 over the static imports (`node:`/`npm:` specifiers kept as they are). */
export function nodeLayerFindings(statics: Graph, roots = NODE_FREE): Finding[] {
  const out: Finding[] = [];
  for (const root of roots) {
    const via = new Map<string, string>([[root, ""]]);
    const queue = [root];
    while (queue.length) {
      const from = queue.shift()!;
      for (const to of statics.get(from) ?? []) {
        if (via.has(to)) continue;
        via.set(to, from);
        if (/^(node|npm):/.test(to)) {
          out.push({ rule: "node-layer", text: `${root} loads ${to} at start (through ${from})` });
        } else queue.push(to);
      }
    }
  }
  return out;
}

/** Rule 2 over `graph`: each set of files that import each other in a circle. */
export function circleFindings(graph: Graph): Finding[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  let counter = 0;
  // Tarjan's algorithm, iterative: the graph is deep enough to matter for recursion.
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { node: string; next: Iterator<string> }[] = [];
    const enter = (node: string) => {
      index.set(node, counter);
      low.set(node, counter++);
      stack.push(node);
      onStack.add(node);
      work.push({
        node,
        next: (graph.get(node) ?? new Set<string>()).values(),
      });
    };
    enter(start);
    while (work.length) {
      const top = work[work.length - 1];
      const step = top.next.next();
      if (!step.done) {
        const to = step.value;
        if (!index.has(to)) enter(to);
        else if (onStack.has(to)) {
          low.set(top.node, Math.min(low.get(top.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) !== index.get(top.node)) continue;
      const members: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        members.push(member);
      } while (member !== top.node);
      if (members.length > 1 || graph.get(top.node)?.has(top.node)) {
        circles.push(members.sort());
      }
    }
  }
  return circles.map((c) => ({
    rule: "circle",
    text: `${c.length} files import each other in a circle: ${c.join(", ")}`,
  }));
}

/** Every `.ts` file of the tree, tree-relative. */
async function treeFiles(dir = ROOT, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (SKIP.has(e.name)) continue;
    const rel = prefix + e.name;
    if (e.isDirectory) {
      out.push(...await treeFiles(`${dir}/${e.name}`, `${rel}/`));
    } else if (
      e.isFile && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")
    ) out.push(rel);
  }
  return out;
}

interface InfoModule {
  specifier: string;
  dependencies?: {
    code?: { specifier?: string };
    type?: { specifier?: string };
    isDynamic?: boolean;
  }[];
}

/** The tree's import graph from `deno info --json` of one root importing every file. */
export async function treeGraph(): Promise<Graph> {
  return (await treeGraphs()).graph;
}

/**
 * The tree's import graph (`graph`: every kind of import between its own
 * files) and its static code imports (`statics`, `node:` and `npm:`
 * specifiers among them).
 */
export async function treeGraphs(): Promise<{ graph: Graph; statics: Graph }> {
  const files = (await treeFiles()).sort();
  const dir = await Deno.makeTempDir({ prefix: "hydra-imports-" });
  try {
    const root = `${dir}/root.ts`;
    const lines = files.map((f) => `import ${JSON.stringify(`file://${ROOT}/${f}`)};`);
    await Deno.writeTextFile(root, lines.join("\n") + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${ROOT}/deno.json`, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: InfoModule[];
    };
    const prefix = `file://${ROOT}/`;
    const graph: Graph = new Map(files.map((f) => [f, new Set<string>()]));
    const statics: Graph = new Map();
    for (const m of info.modules) {
      if (!m.specifier.startsWith(prefix)) continue;
      const from = m.specifier.slice(prefix.length);
      const targets = graph.get(from) ?? new Set<string>();
      graph.set(from, targets);
      const loaded = new Set<string>();
      statics.set(from, loaded);
      for (const dep of m.dependencies ?? []) {
        for (const to of [dep.code?.specifier, dep.type?.specifier]) {
          if (to?.startsWith(prefix)) targets.add(to.slice(prefix.length));
        }
        const code = dep.code?.specifier;
        if (code && !dep.isDynamic) {
          loaded.add(code.startsWith(prefix) ? code.slice(prefix.length) : code);
        }
      }
    }
    return { graph, statics };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The layer table as Markdown, top layer first. */
export function layerTable(layers: readonly Layer[] = LAYERS): string {
  const rows = [...layers].reverse().map((l) =>
    `| ${l.rank} | ${l.folders.map((f) => f === "." ? "(root)" : `${f}/`).join(", ")} | ${l.what} |`
  );
  return [
    "| layer | folders | what |",
    "| ----- | ------- | ---- |",
    `| top | tests/, bench/, tools/, *_test.ts, testdata.ts | tests and tooling: may import anything |`,
    ...rows,
  ].join("\n");
}

if (import.meta.main) {
  if (Deno.args.includes("--table")) {
    console.log(layerTable());
    Deno.exit(0);
  }
  const { graph, statics } = await treeGraphs();
  const findings = [
    ...layerFindings(graph),
    ...circleFindings(graph),
    ...nodeLayerFindings(statics),
  ];
  for (const f of findings) console.error(`${f.rule}: ${f.text}`);
  if (findings.length) {
    console.error(
      `\nimport rules: ${findings.length} problem(s); see tools/check_imports.ts`,
    );
    Deno.exit(1);
  }
  let edges = 0;
  for (const t of graph.values()) edges += t.size;
  console.error(
    `import rules: ${graph.size} files, ${edges} imports, all downwards, no circle, ` +
      `no Node layer in ${NODE_FREE.length} entry modules`,
  );
}
