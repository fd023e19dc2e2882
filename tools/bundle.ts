/**
 * Builds the bundled form of hydra's CNI path that the source launcher
 * (bin/hydra) runs for CNI invocations, in two files:
 *
 * - `.cache/bundle/hydra-cni.js`, what the launcher runs: cmd/exec_entry.ts,
 *   which hands a `daemonExec` meta-CNI invocation to the node daemon with
 *   a few small modules;
 * - `.cache/bundle/hydra-cni-full.js`: cmd/plugin_main.ts and everything it
 *   may load, which the first file imports only when it has to run the
 *   plugin path itself;
 * - `.cache/bundle/hydra-cni-kubelet.js`: the kubelet's gRPC client, which the
 *   plugin path loads only for a network naming a device `resourceName`
 *   (inlined, its Node and protobuf imports would load on every exec);
 *
 * plus `.cache/bundle/hydra-cni.js.inputs`, the tree-relative paths of the
 * files both were built from, one per line, and the same list as a shell
 * assignment for the launcher to source (`.inputs.sh`). The launcher uses
 * the bundle only while none of those files is newer than it, so an edit
 * falls back to main.ts until the next build, never to stale code.
 *
 *   deno run -A tools/bundle.ts           build (if stale) and say where
 *   deno run -A tools/bundle.ts --force   build even when fresh
 *   deno run -A tools/bundle.ts --check   exit 0 when fresh, 1 when stale or missing
 *
 * Why: a plugin process loads its code on every exec. From one file Deno
 * reads, hashes and code-caches one module instead of ~90; and a process
 * that only forwards to the daemon loads a file of a few kilobytes, not the
 * whole plugin path.
 *
 * npm packages (the names deno.json maps) stay out of the files: they are
 * only ever imported lazily, and inlined they cost every exec tens of
 * milliseconds to load (the YAML parser alone doubled the start-up time).
 * Their imports in the output are rewritten to the `npm:` specifiers
 * deno.json maps them to, so they still load, from Deno's cache, when used.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** What the launcher runs; its module graph (dynamic imports too) is the inputs list. */
const ENTRY = "cmd/exec_entry.ts";
/** The plugin path, the second file. */
const FULL_ENTRY = "cmd/plugin_main.ts";
/** How {@link ENTRY} imports {@link FULL_ENTRY}. */
const FULL_SPECIFIER = "./plugin_main.ts";
/** Where the bundle goes (tree-relative; bin/hydra names the same path). */
export const BUNDLE = ".cache/bundle/hydra-cni.js";
/** The plugin path's file, beside {@link BUNDLE}. */
export const FULL_BUNDLE = ".cache/bundle/hydra-cni-full.js";
/** The kubelet client (gRPC, Node's Buffer), loaded by the plugin path on demand. */
const KUBELET_ENTRY = "kubelet/podresources.ts";
/** How the plugin path imports {@link KUBELET_ENTRY}. */
const KUBELET_SPECIFIER = "../kubelet/podresources.ts";
/** The kubelet client's file, beside {@link BUNDLE}. */
export const KUBELET_BUNDLE = ".cache/bundle/hydra-cni-kubelet.js";
/** Files besides the module graph that change what the bundle would be. */
const EXTRA_INPUTS = ["deno.json", "deno.lock"];

const decoder = new TextDecoder();

/** deno.json's import map: bare name → target (`npm:yaml@2.9.1`). */
async function importMap(): Promise<Record<string, string>> {
  const conf = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const imports = conf?.imports ?? {};
  const out: Record<string, string> = {};
  for (const [name, target] of Object.entries(imports)) {
    if (typeof target === "string") out[name] = target;
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * Points the bundle's imports of external bare names (`import("yaml")`,
 * `from "yaml"`) at their mapped targets: the bundle runs without deno.json.
 */
export function rewriteExternals(
  code: string,
  map: Record<string, string>,
): string {
  let out = code;
  for (const [name, target] of Object.entries(map)) {
    const spec = new RegExp(
      `(\\bimport\\s*\\(\\s*|\\bfrom\\s*)(["'])${escapeRegExp(name)}\\2`,
      "g",
    );
    out = out.replace(
      spec,
      (_m, lead: string, q: string) => `${lead}${q}${target}${q}`,
    );
  }
  return out;
}

/**
 * Turns the bundle's `import("<specifier>")` of a file left out into an
 * import of `target` (a file beside the bundle) that Deno does not follow
 * ahead of time: it loads and analyses a statically named dynamic import,
 * and its whole graph, before the first line runs, which is what the split
 * into two files is there to avoid.
 */
export function deferImport(
  code: string,
  specifier: string,
  target: string,
): string {
  const spec = new RegExp(
    `\\bimport\\s*\\(\\s*(["'])${escapeRegExp(specifier)}\\1\\s*\\)`,
    "g",
  );
  return code.replace(
    spec,
    () => `import(new URL(${JSON.stringify(target)}, import.meta.url).href)`,
  );
}

async function run(
  args: string[],
  env: Record<string, string> = {},
  stdin?: string,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    ok: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Tree-relative paths of every local module the entry may load (dynamic imports included). */
async function moduleFiles(): Promise<string[]> {
  const info = await run(["info", "--json", "--config", "deno.json", ENTRY]);
  if (!info.ok) throw new Error(`deno info failed: ${info.stderr.trim()}`);
  const graph = JSON.parse(info.stdout) as { modules: { specifier: string }[] };
  const prefix = `file://${ROOT}/`;
  const files = graph.modules
    .map((m) => m.specifier)
    .filter((s) => s.startsWith(prefix))
    .map((s) => decodeURIComponent(s.slice(prefix.length)));
  if (!files.includes(ENTRY)) {
    throw new Error(`deno info did not list ${ENTRY}`);
  }
  return files.sort();
}

/** The files recorded in an inputs list (one tree-relative path per line). */
export function parseInputs(text: string): string[] {
  return text.split("\n").filter(Boolean);
}

/**
 * The inputs list as the launcher sources it: `hydra_inputs`, one path a
 * line, single-quoted.
 */
export function shellInputs(inputs: readonly string[]): string {
  const quoted = inputs.join("\n").replaceAll("'", `'\\''`);
  return `# Written by tools/bundle.ts; sourced by bin/hydra.\nhydra_inputs='${quoted}'\n`;
}

/** True when the bundle's files exist and none of its recorded inputs is newer. */
export async function isFresh(): Promise<boolean> {
  try {
    await Deno.stat(`${ROOT}/${FULL_BUNDLE}`);
    await Deno.stat(`${ROOT}/${KUBELET_BUNDLE}`);
    await Deno.stat(`${ROOT}/${BUNDLE}.inputs.sh`);
    const built = (await Deno.stat(`${ROOT}/${BUNDLE}`)).mtime!.getTime();
    const inputs = parseInputs(
      await Deno.readTextFile(`${ROOT}/${BUNDLE}.inputs`),
    );
    for (const f of inputs) {
      if ((await Deno.stat(`${ROOT}/${f}`)).mtime!.getTime() > built) {
        return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

/** Checks a freshly built bundle answers VERSION as the meta-CNI and as a plugin. */
async function smokeTest(file: string): Promise<void> {
  for (const role of ["hydra", "hydra-bridge"]) {
    const out = await run(
      ["run", "--quiet", "--no-prompt", "-A", "--no-config", file],
      { HYDRA_ARGV0: role, CNI_COMMAND: "VERSION" },
      `{"cniVersion":"1.0.0"}`,
    );
    let versions: unknown;
    try {
      versions = JSON.parse(out.stdout).supportedVersions;
    } catch {
      // reported below
    }
    if (!out.ok || !Array.isArray(versions)) {
      throw new Error(
        `the built bundle does not answer VERSION as ${role}: ${out.stderr.trim()}`,
      );
    }
  }
}

/**
 * Fetches the npm packages the plugin path imports lazily into the Deno
 * cache the launcher uses (DENO_DIR, else the tree's .cache/deno). Plugins
 * run inside namespaces without a route to the registry: with the
 * packages missing, every start would try (and time out) to fetch them.
 * The entry imports the plugin path through a computed URL, which Deno
 * does not follow ahead of time, so the plugin path is cached itself.
 */
async function cachePackages(fullFile: string): Promise<void> {
  const out = await run(["cache", "--quiet", "--no-config", fullFile], {
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${ROOT}/.cache/deno`,
  });
  if (!out.ok) {
    throw new Error(
      `caching the bundle's packages failed: ${out.stderr.trim()}`,
    );
  }
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Bundles `entry` into `output`, npm names external; `externals` maps
 * local specifiers that are only imported dynamically to the files beside
 * the bundle they are loaded from instead (see {@link deferImport}).
 */
async function bundleOne(
  entry: string,
  output: string,
  map: Record<string, string>,
  externals: Record<string, string> = {},
): Promise<void> {
  const out = await run([
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    "--config",
    "deno.json",
    ...[...Object.keys(map), ...Object.keys(externals)].flatMap((
      name,
    ) => ["--external", name]),
    "--output",
    output,
    entry,
  ]);
  if (!out.ok) {
    throw new Error(`deno bundle ${entry} failed: ${out.stderr.trim()}`);
  }
  let code = rewriteExternals(await Deno.readTextFile(output), map);
  for (const [specifier, target] of Object.entries(externals)) {
    const deferred = deferImport(code, specifier, target);
    if (deferred === code) {
      throw new Error(`${entry}: the bundle does not import ${specifier}`);
    }
    code = deferred;
  }
  await Deno.writeTextFile(output, code);
}

/** Builds the bundle's two files and its inputs list; returns the launcher's file. */
export async function buildBundle(): Promise<string> {
  // Stamped on the files afterwards: a file edited while the build runs is
  // then newer than the bundle, so the bundle is not taken as fresh.
  const started = new Date();
  const inputs = [...new Set([...await moduleFiles(), ...EXTRA_INPUTS])];
  const final = `${ROOT}/${BUNDLE}`;
  const finalFull = `${ROOT}/${FULL_BUNDLE}`;
  const finalKubelet = `${ROOT}/${KUBELET_BUNDLE}`;
  const dir = final.slice(0, final.lastIndexOf("/"));
  // Built and tried under their final names in a private folder: the entry
  // imports the plugin path's file by its name, beside itself.
  const tmpDir = `${dir}/.build-${Deno.pid}`;
  await Deno.mkdir(tmpDir, { recursive: true });
  const tmp = `${tmpDir}/${baseName(BUNDLE)}`;
  const tmpFull = `${tmpDir}/${baseName(FULL_BUNDLE)}`;
  const tmpKubelet = `${tmpDir}/${baseName(KUBELET_BUNDLE)}`;
  try {
    const map = await importMap();
    await bundleOne(KUBELET_ENTRY, tmpKubelet, map);
    await bundleOne(FULL_ENTRY, tmpFull, map, {
      [KUBELET_SPECIFIER]: `./${baseName(KUBELET_BUNDLE)}`,
    });
    await bundleOne(ENTRY, tmp, map, {
      [FULL_SPECIFIER]: `./${baseName(FULL_BUNDLE)}`,
    });
    await smokeTest(tmp);
    await cachePackages(tmpFull);
    await cachePackages(tmpKubelet);
    await Deno.writeTextFile(`${tmpDir}/inputs`, inputs.join("\n") + "\n");
    await Deno.writeTextFile(`${tmpDir}/inputs.sh`, shellInputs(inputs));
    await Deno.utime(tmpKubelet, started, started);
    await Deno.utime(tmpFull, started, started);
    await Deno.utime(tmp, started, started);
    // The plugin path, then the entry, then the inputs: a launcher reading
    // in between sees either an old list (a subset, checked against a newer
    // bundle) or stale inputs, never a wrong "fresh".
    await Deno.rename(tmpKubelet, finalKubelet);
    await Deno.rename(tmpFull, finalFull);
    await Deno.rename(tmp, final);
    await Deno.rename(`${tmpDir}/inputs`, `${final}.inputs`);
    await Deno.rename(`${tmpDir}/inputs.sh`, `${final}.inputs.sh`);
  } finally {
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
  return final;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const force = Deno.args.includes("--force");
  const fresh = await isFresh();
  if (check) {
    console.error(
      fresh ? `${BUNDLE} is fresh` : `${BUNDLE} is stale or missing`,
    );
    Deno.exit(fresh ? 0 : 1);
  }
  if (fresh && !force) {
    console.error(`${BUNDLE} is fresh`);
  } else {
    try {
      console.error(`built ${await buildBundle()}`);
    } catch (err) {
      console.error(`tools/bundle.ts: ${(err as Error).message}`);
      Deno.exit(1);
    }
  }
}
