/**
 * Builds hydra's container image without a registry or `deno compile` (which downloads its runtime
 * and so cannot work offline): an OCI image archive (OCI layout in a tar) that
 * `ctr images import` / `docker load`-style tools take as is.
 *
 *   deno run -A tools/image.ts [--tag NAME] [--out FILE] [--force]
 *
 * prints `IMAGE=<name>` and `ARCHIVE=<file>`; without `--force` it returns at once when the archive
 * was built from the same commit, Deno and options. Two layers:
 *
 * - base: the Deno executable from npm (tools/node_modules, what ./dev.sh installs), the shared
 *   libraries it and the launcher's few helpers (sh, readlink, dirname, basename) link, libnftables
 *   and the libraries it links (the policy role loads it through FFI, as the Dockerfile's image
 *   carries it), all taken from this machine (`ldd`), and a minimal /etc. It changes only with
 *   Deno or the machine's libc and libnftables.
 * - app: /opt/hydra: the committed tree at HEAD (`git archive`; uncommitted edits are not in it),
 *   the image's labels (`.image-labels.json`), its filled Deno cache (npm packages, transpiled
 *   modules) and the CNI bundle.
 *
 * The caches are filled by running Deno inside the staged root (chroot in a private mount
 * namespace), which proves the root complete: the build fails if `hydra version` does not run in
 * it or if hydra's libnftables binding cannot load the library there. The entrypoint is the
 * launcher with `install`, as the Dockerfile's; the DaemonSets in deploy/ name
 * `/usr/local/bin/hydra` as command for the other roles. Needs root (chroot, mounts), git, tar,
 * sha256sum, ldd, ldconfig, unshare and the libnftables1 package.
 *
 * @module
 */

import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Where the tree lives in the image (and where its Deno cache says it lives). */
export const IMAGE_TREE = "/opt/hydra";
/** The image's labels as a file of its tree. */
export const TREE_LABELS = ".image-labels.json";
/** Programs the launcher (bin/hydra) needs besides shell builtins. */
const HELPERS = [
  "/usr/bin/dash",
  "/usr/bin/readlink",
  "/usr/bin/dirname",
  "/usr/bin/basename",
];
/** Libraries hydra loads through FFI by soname: nothing links them, so ldd cannot find them. */
const FFI_LIBRARIES = ["libnftables.so.1"];
/** Bump when the image layout changes, so archives built by an older builder are rebuilt. */
const LAYOUT_VERSION = "3";
/** tar options for layers whose digest depends only on their content. */
const REPRODUCIBLE_TAR = [
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--sort=name",
];

/** Options for {@link buildHydraImage}. */
export interface ImageOptions {
  /** Image name (default `localhost/hydra/hydra:<version from deno.json>`). */
  tag?: string;
  /** Archive path (default `<repo>/.cache/images/hydra.tar`). */
  out?: string;
  /** Rebuild even when the archive is current. */
  force?: boolean;
}

/** The result of {@link buildHydraImage}. */
export interface BuiltImage {
  /** The archive. */
  path: string;
  /** The image name it carries. */
  tag: string;
  /** The commit whose tree it holds. */
  commit: string;
  /** False when the archive was already current. */
  rebuilt: boolean;
  sizeBytes: number;
}

const decoder = new TextDecoder();

async function run(
  program: string,
  args: string[],
  opts: { env?: Record<string, string> } = {},
): Promise<string> {
  const out = await new Deno.Command(program, {
    args,
    // Given an environment, a command gets only that one.
    env: opts.env,
    clearEnv: opts.env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(out.stderr).trim();
  if (!out.success) {
    throw new Error(
      `${program} ${args.join(" ")} failed (exit ${out.code}): ${stderr}`,
    );
  }
  return decoder.decode(out.stdout);
}

/** The image name used when none is given. */
export async function defaultTag(): Promise<string> {
  const conf = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)) as {
    version?: string;
  };
  return `localhost/hydra/hydra:${conf.version ?? "dev"}`;
}

/** The archive path used when none is given. */
export function defaultArchive(): string {
  return `${ROOT}/.cache/images/hydra.tar`;
}

/** The Deno executable installed from npm into tools/node_modules. */
async function denoFromNpm(): Promise<string> {
  const link = `${ROOT}/tools/node_modules/.bin/deno`;
  try {
    return await Deno.realPath(link);
  } catch {
    throw new Error(
      `${link} is missing: run ./dev.sh (it installs Deno from npm) first`,
    );
  }
}

/** HEAD's commit, tree and commit time. */
async function gitHead(): Promise<
  { commit: string; tree: string; time: number }
> {
  const out = await run("git", [
    "-C",
    ROOT,
    "log",
    "-1",
    "--format=%H %T %ct",
    "HEAD",
  ]);
  const [commit, tree, time] = out.trim().split(" ");
  return { commit, tree, time: Number(time) };
}

async function sha256(path: string): Promise<string> {
  return (await run("sha256sum", [path])).split(" ")[0];
}

/** What an archive is built from; equal keys mean equal archives. */
async function buildKey(
  tag: string,
  deno: string,
  tree: string,
): Promise<string> {
  const parts = [
    LAYOUT_VERSION,
    tag,
    tree,
    (await run(deno, ["--version"])).split("\n")[0],
    await sha256(new URL(import.meta.url).pathname),
  ];
  return parts.join("\n") + "\n";
}

/** Absolute paths of the shared objects (and the dynamic loader) that `programs` load. */
export function parseLdd(output: string): string[] {
  const found = new Set<string>();
  for (const line of output.split("\n")) {
    const arrow = /=>\s+(\/\S+)\s+\(/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? bare?.[1];
    if (path) found.add(path);
  }
  return [...found].sort();
}

/** Where the loader cache (`ldconfig -p` output) finds each soname; throws when one is absent. */
export function parseLdconfig(output: string, sonames: string[]): string[] {
  return sonames.map((soname) => {
    for (const line of output.split("\n")) {
      const match = /^\s*(\S+)\s+\((.*)\)\s+=>\s+(\/\S+)$/.exec(line);
      if (match?.[1] === soname && match[2].includes("x86-64")) return match[3];
    }
    throw new Error(
      `${soname} is not installed on this machine (Debian: libnftables1)`,
    );
  });
}

async function copyInto(
  rootfs: string,
  source: string,
  target = source,
): Promise<void> {
  const dest = `${rootfs}${target}`;
  await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(await Deno.realPath(source), dest);
  await Deno.chmod(dest, (await Deno.stat(source)).mode! & 0o7777);
}

/** The base layer's root: Deno, the launcher's helpers, their libraries, a minimal /etc. */
async function stageBase(rootfs: string, deno: string): Promise<void> {
  const dirs = [
    "usr/bin",
    "usr/lib",
    "usr/lib64",
    "usr/sbin",
    "usr/local/bin",
    "etc",
    "opt",
  ];
  // Mount points the runtime and the DaemonSets' volumes use.
  dirs.push("proc", "sys", "dev", "run", "var/run");
  for (const dir of dirs) {
    await Deno.mkdir(`${rootfs}/${dir}`, { recursive: true });
  }
  // Debian's merged /usr, so paths from ldd and in scripts hold either way.
  for (const dir of ["bin", "lib", "lib64", "sbin"]) {
    await Deno.symlink(`usr/${dir}`, `${rootfs}/${dir}`);
  }
  await Deno.mkdir(`${rootfs}/tmp`, { mode: 0o1777 });
  await Deno.chmod(`${rootfs}/tmp`, 0o1777);
  await copyInto(rootfs, deno, "/usr/local/bin/deno");
  for (const helper of HELPERS) await copyInto(rootfs, helper);
  await Deno.symlink("dash", `${rootfs}/usr/bin/sh`);
  const ffi = parseLdconfig(await run("ldconfig", ["-p"]), FFI_LIBRARIES);
  for (const library of ffi) await copyInto(rootfs, library);
  const libraries = parseLdd(await run("ldd", [deno, ...HELPERS, ...ffi]));
  for (const library of libraries) await copyInto(rootfs, library);
  await Deno.symlink(
    `${IMAGE_TREE}/bin/hydra`,
    `${rootfs}/usr/local/bin/hydra`,
  );
  await Deno.writeTextFile(
    `${rootfs}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\n",
  );
  await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\n");
}

/** The app layer's tree: HEAD's committed files under /opt/hydra. */
async function stageTree(rootfs: string, commit: string): Promise<string> {
  const tree = `${rootfs}${IMAGE_TREE}`;
  await Deno.mkdir(tree, { recursive: true });
  const archive = `${rootfs}/../tree.tar`;
  await run("git", [
    "-C",
    ROOT,
    "archive",
    "--format=tar",
    `--output=${archive}`,
    commit,
  ]);
  await run("tar", ["-xf", archive, "-C", tree]);
  await Deno.remove(archive);
  return tree;
}

/** The Deno cache this checkout uses (as ./dev.sh sets it), to seed the image's from. */
function hostDenoDir(): string {
  return Deno.env.get("DENO_DIR") ?? `${ROOT}/.cache/deno`;
}

/**
 * Fills the image's Deno cache and CNI bundle by running Deno inside the staged root: npm packages
 * come from this checkout's cache (no network), modules are transpiled at their image paths. Then
 * runs `hydra version` there, through /usr/local/bin/hydra as a DaemonSet would.
 */
async function fillCaches(rootfs: string): Promise<void> {
  const denoDir = `${rootfs}${IMAGE_TREE}/.cache/deno`;
  await Deno.mkdir(denoDir, { recursive: true });
  // npm packages the lockfile pins, and esbuild (dl/), which `deno bundle` runs.
  for (const sub of ["npm", "dl"]) {
    await run("cp", ["-a", `${hostDenoDir()}/${sub}`, `${denoDir}/${sub}`]);
  }
  const script = [
    "set -e",
    `cd ${IMAGE_TREE}`,
    "deno install --quiet --frozen --cached-only --entrypoint main.ts",
    "deno run --quiet --cached-only -A tools/bundle.ts --force >/dev/null",
    "/usr/local/bin/hydra version",
    // The policy role's binding loads libnftables by soname, as it will in a container.
    'deno eval --cached-only "import { nftSymbols } from \\"./nft/libnftables.ts\\"; nftSymbols();"',
  ].join("\n");
  const inRoot = [
    "set -e",
    'mount -t proc proc "$1/proc"',
    'mount --rbind /dev "$1/dev"',
    `exec chroot "$1" /bin/sh -c '${script}'`,
  ].join("\n");
  const unshare = ["--mount", "--propagation", "private", "--"];
  await run("unshare", [...unshare, "/bin/sh", "-c", inRoot, "sh", rootfs], {
    env: imageEnv(),
  });
  // esbuild is only needed to bundle.
  await Deno.remove(`${denoDir}/dl`, { recursive: true });
}

/** The environment the image's processes get. */
function imageEnv(): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    HYDRA_DENO: "/usr/local/bin/deno",
    DENO_DIR: `${IMAGE_TREE}/.cache/deno`,
    DENO_NO_UPDATE_CHECK: "1",
    // In meta mode, hydra install copies Deno and the tree onto the node (install/tree_copy.ts):
    // a launcher pointing into this image could not run there.
    HYDRA_TREE_IN_IMAGE: "1",
  };
}

/** Packs a folder's `entries` into a reproducible layer tar and stores it as a blob. */
async function packLayer(
  blobs: string,
  from: string,
  entries: string[],
  mtime: number,
): Promise<Descriptor & { diffId: string }> {
  const file = `${blobs}/../layer.tar`;
  await run("tar", [
    ...REPRODUCIBLE_TAR,
    `--mtime=@${mtime}`,
    "-C",
    from,
    "-cf",
    file,
    ...entries,
  ]);
  const blob = await storeBlob(
    blobs,
    file,
    "application/vnd.oci.image.layer.v1.tar",
  );
  return { ...blob, diffId: blob.digest };
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

async function storeBlob(
  blobs: string,
  file: string,
  mediaType: string,
): Promise<Descriptor> {
  const hex = await sha256(file);
  const size = (await Deno.stat(file)).size;
  await Deno.rename(file, `${blobs}/${hex}`);
  return { mediaType, digest: `sha256:${hex}`, size };
}

async function storeJson(
  blobs: string,
  value: unknown,
  mediaType: string,
): Promise<Descriptor> {
  const file = `${blobs}/../blob.json`;
  await Deno.writeTextFile(file, JSON.stringify(value));
  return await storeBlob(blobs, file, mediaType);
}

/** OCI image config: entrypoint, environment, labels, layers. */
function imageConfig(
  diffIds: string[],
  labels: Record<string, string>,
  created: string,
): Record<string, unknown> {
  return {
    architecture: "amd64",
    os: "linux",
    created,
    config: {
      Entrypoint: ["/usr/local/bin/hydra", "install"],
      Env: Object.entries(imageEnv()).map(([k, v]) => `${k}=${v}`),
      WorkingDir: "/",
      Labels: labels,
    },
    rootfs: { type: "layers", diff_ids: diffIds },
  };
}

/** Writes the OCI layout (layers, config, manifest, index) and tars it to `archive`. */
/** The image's OCI labels. */
function imageLabels(
  tag: string,
  head: { commit: string; time: number },
): Record<string, string> {
  return {
    "org.opencontainers.image.title": "hydra",
    "org.opencontainers.image.version": tag.slice(tag.lastIndexOf(":") + 1),
    "org.opencontainers.image.revision": head.commit,
    "org.opencontainers.image.created": new Date(head.time * 1000)
      .toISOString(),
  };
}

/**
 * The labels inside the tree as well: a node's copy of the tree (hydra install's meta mode) then
 * names the image it came from, and two images of one commit under different tags are two
 * versions there.
 */
async function writeTreeLabels(
  tree: string,
  tag: string,
  head: { commit: string; time: number },
): Promise<void> {
  const path = `${tree}/${TREE_LABELS}`;
  await Deno.writeTextFile(
    path,
    JSON.stringify(imageLabels(tag, head), null, 2) + "\n",
  );
  await Deno.utime(path, head.time, head.time);
}

async function writeArchive(
  work: string,
  rootfs: string,
  archive: string,
  tag: string,
  head: { commit: string; time: number },
): Promise<void> {
  const layout = `${work}/layout`;
  const blobs = `${layout}/blobs/sha256`;
  await Deno.mkdir(blobs, { recursive: true });
  const topLevel = [...Deno.readDirSync(rootfs)].map((e) => e.name).filter((
    n,
  ) => n !== "opt");
  const base = await packLayer(blobs, rootfs, topLevel, 0);
  const app = await packLayer(blobs, rootfs, ["opt"], head.time);
  const labels = imageLabels(tag, head);
  const created = labels["org.opencontainers.image.created"];
  const version = labels["org.opencontainers.image.version"];
  const config = await storeJson(
    blobs,
    imageConfig([base.diffId, app.diffId], labels, created),
    "application/vnd.oci.image.config.v1+json",
  );
  const layer = ({ mediaType, digest, size }: Descriptor) => ({
    mediaType,
    digest,
    size,
  });
  const manifest = await storeJson(blobs, {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config,
    layers: [layer(base), layer(app)],
    annotations: labels,
  }, "application/vnd.oci.image.manifest.v1+json");
  await Deno.writeTextFile(
    `${layout}/oci-layout`,
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{
        ...manifest,
        platform: { architecture: "amd64", os: "linux" },
        annotations: {
          "io.containerd.image.name": tag,
          "org.opencontainers.image.ref.name": version,
        },
      }],
    }),
  );
  const temp = `${archive}.${crypto.randomUUID()}.tmp`;
  const entries = ["oci-layout", "index.json", "blobs"];
  await run("tar", [
    ...REPRODUCIBLE_TAR,
    "--mtime=@0",
    "-C",
    layout,
    "-cf",
    temp,
    ...entries,
  ]);
  await Deno.rename(temp, archive);
}

const WORK_PREFIX = ".hydra-image-";

/**
 * Removes work folders a killed build left behind (an hour old: no build takes that long, and a
 * concurrent build's folder is younger).
 */
async function removeAbandoned(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || !entry.name.startsWith(WORK_PREFIX)) continue;
    const path = `${dir}/${entry.name}`;
    const age = Date.now() -
      ((await Deno.stat(path)).mtime?.getTime() ?? Date.now());
    if (age > 3600_000) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

/** Builds the image archive unless it is current; see the module documentation. */
export async function buildHydraImage(
  opts: ImageOptions = {},
): Promise<BuiltImage> {
  const tag = opts.tag ?? await defaultTag();
  const archive = opts.out ?? defaultArchive();
  const deno = await denoFromNpm();
  const head = await gitHead();
  const key = await buildKey(tag, deno, head.tree);
  const stamp = `${archive}.key`;
  const current = await Deno.readTextFile(stamp).catch(() => "");
  if (!opts.force && current === key) {
    const size = await Deno.stat(archive).then((s) => s.size).catch(() => -1);
    if (size > 0) {
      return {
        path: archive,
        tag,
        commit: head.commit,
        rebuilt: false,
        sizeBytes: size,
      };
    }
  }
  const dir = archive.slice(0, archive.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true });
  await removeAbandoned(dir);
  const work = await Deno.makeTempDir({ dir, prefix: WORK_PREFIX });
  try {
    const rootfs = `${work}/rootfs`;
    await Deno.mkdir(rootfs);
    await stageBase(rootfs, deno);
    await writeTreeLabels(await stageTree(rootfs, head.commit), tag, head);
    await fillCaches(rootfs);
    await Deno.remove(stamp).catch(() => {});
    await writeArchive(work, rootfs, archive, tag, head);
    await Deno.writeTextFile(stamp, key);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  const sizeBytes = (await Deno.stat(archive)).size;
  return { path: archive, tag, commit: head.commit, rebuilt: true, sizeBytes };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      tag: { type: "string" },
      out: { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "usage: deno run -A tools/image.ts [--tag NAME] [--out FILE] [--force]",
    );
    Deno.exit(0);
  }
  try {
    const t0 = performance.now();
    const image = await buildHydraImage(values);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.error(
      `${image.rebuilt ? "built" : "current"}: ${image.tag} from ${image.commit.slice(0, 12)}, ` +
        `${(image.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${seconds}s`,
    );
    console.log(`IMAGE=${image.tag}`);
    console.log(`ARCHIVE=${image.path}`);
  } catch (err) {
    console.error(
      `tools/image.ts: ${err instanceof Error ? err.message : err}`,
    );
    Deno.exit(1);
  }
}
