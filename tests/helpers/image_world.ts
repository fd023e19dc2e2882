/**
 * A test world that mimics hydra's container on a node: a root folder laid
 * out as hydra's image (glibc and the libraries hydra loads, libnftables
 * among them; Deno, this tree as `/opt/hydra` with its launcher, and the few
 * programs the launcher needs — no iptables, no nft, no other tool), with
 * the node's root mounted at `/host` as the DaemonSets mount it, and the
 * node's `/run/netns`, `/dev`, `/sys` and a fresh `/proc`.
 *
 * Each {@link ImageWorld.run} starts a program inside it: a private mount
 * namespace (slave propagation, so network namespaces made later show up,
 * as through HostToContainer mounts) where the mounts are made, then chroot
 * into the root, optionally inside a network namespace first. The mounts
 * die with the namespace; {@link ImageWorld.close} removes the folder.
 *
 * Paths a test hands to the programs (state folders, plugin folders) are
 * bound at the same absolute path inside, as hostPath volumes are.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { REPO_ROOT } from "../cni/helpers.ts";

/** Where the tree is inside (as in the offline image of tools/image.ts). */
export const IMAGE_TREE = "/opt/hydra";
/** Where the node's root is mounted inside (the DaemonSets' host root volume). */
export const HOST_ROOT = "/host";
/** Programs the launcher needs besides shell builtins. */
const LAUNCHER_HELPERS = ["readlink", "dirname", "basename"];

/** What one program run inside printed and how it exited. */
export interface WorldOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of one run. */
export interface WorldRun {
  env?: Record<string, string>;
  stdin?: string;
  /** A named network namespace to run in (under /var/run/netns). */
  netns?: string;
}

/** hydra's image world; see the module doc. */
export interface ImageWorld extends RootWorld {
  /** The launcher inside: `/opt/hydra/bin/hydra`. */
  hydra: string;
  /** The environment every run starts with (PATH of the image, Deno's cache in the tree). */
  baseEnv: Record<string, string>;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The Deno executable behind the tree's launcher. */
function denoBinary(): string {
  return Deno.realPathSync(join(REPO_ROOT, "tools/node_modules/.bin/deno"));
}

async function which(program: string): Promise<string> {
  for (const dir of ["/usr/bin", "/bin"]) {
    try {
      return await Deno.realPath(join(dir, program));
    } catch {
      // next
    }
  }
  throw new Error(`${program} not found on this machine`);
}

/** Makes the mount points inside the root: folders, and empty files for file binds. */
async function mountPoint(root: string, path: string, file = false): Promise<string> {
  const target = join(root, path);
  await Deno.mkdir(file ? dirname(target) : target, { recursive: true });
  if (file) await Deno.writeFile(target, new Uint8Array(), { create: true });
  return target;
}

/** How a root is laid out (paths are inside the root). */
export interface RootLayout {
  /** `from` on the node appears at `to` (recursively, read-write unless `ro`). */
  bind(from: string, to: string, opts?: { file?: boolean; ro?: boolean }): Promise<void>;
  symlink(target: string, link: string): Promise<void>;
  /** A file of the root itself. */
  file(path: string, content: string): Promise<void>;
  /** A fresh /proc. */
  proc(): Promise<void>;
}

/** A root folder entered by chroot inside a private mount namespace. */
export interface RootWorld {
  root: string;
  /** Starts a program inside (stdio piped); `netns` first enters a named network namespace. */
  spawn(argv: string[], opts?: Omit<WorldRun, "stdin">): Deno.ChildProcess;
  /** Runs a program inside and waits for it. */
  run(argv: string[], opts?: WorldRun): Promise<WorldOutput>;
  close(): Promise<void>;
}

/** Builds a root with `layout` and returns the world entering it; see the module doc. */
export async function createRootWorld(
  prefix: string,
  layout: (l: RootLayout) => Promise<void>,
  baseEnv: Record<string, string> = {},
): Promise<RootWorld> {
  const root = await Deno.makeTempDir({ prefix });
  const mounts: string[] = [];
  const builder: RootLayout = {
    async bind(from, to, opts = {}) {
      const target = await mountPoint(root, to, opts.file);
      mounts.push(`/usr/bin/mount --rbind ${shellQuote(from)} ${shellQuote(target)}`);
      if (opts.ro) mounts.push(`/usr/bin/mount -o remount,bind,ro ${shellQuote(target)}`);
    },
    async symlink(target, link) {
      await Deno.mkdir(dirname(join(root, link)), { recursive: true });
      await Deno.symlink(target, join(root, link));
    },
    async file(path, content) {
      await Deno.mkdir(dirname(join(root, path)), { recursive: true });
      await Deno.writeTextFile(join(root, path), content);
    },
    async proc() {
      const proc = await mountPoint(root, "/proc");
      mounts.push(`/usr/bin/mount -t proc proc ${shellQuote(proc)}`);
    },
  };
  try {
    await layout(builder);
    // A plain folder of the root, not a tmpfs: that would hide the binds of test folders in /tmp.
    await Deno.mkdir(join(root, "tmp"), { recursive: true, mode: 0o1777 });
  } catch (err) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw err;
  }
  const script = [...mounts, `exec /usr/sbin/chroot ${shellQuote(root)} "$@"`].join(" && ");
  const spawn = (argv: string[], opts: Omit<WorldRun, "stdin"> = {}) => {
    const inNs = opts.netns ? ["/usr/sbin/ip", "netns", "exec", opts.netns] : [];
    const [program, ...args] = [
      // Nothing started here outlives a killed test run.
      "/usr/bin/setpriv",
      "--pdeathsig",
      "TERM",
      "--",
      ...inNs,
      "/usr/bin/unshare",
      "--mount",
      "--propagation",
      "slave",
      "--",
      "/bin/sh",
      "-c",
      script,
      "world",
      ...argv,
    ];
    return new Deno.Command(program, {
      args,
      env: { ...baseEnv, ...opts.env },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  };
  return {
    root,
    spawn,
    async run(argv, opts = {}) {
      const child = spawn(argv, opts);
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin ?? ""));
      await w.close();
      const out = await child.output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    },
    async close() {
      // Every mount lived in the runs' own namespaces; only mount points are left
      // here. Never remove recursively through a mount: a bind may be the node's root.
      const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
      const leaked = mountinfo.split("\n").map((l) => l.split(" ")[4])
        .filter((p) => p !== undefined && (p === root || p.startsWith(`${root}/`)));
      if (leaked.length > 0) throw new Error(`mounts left under ${root}: ${leaked.join(", ")}`);
      await Deno.remove(root, { recursive: true });
    },
  };
}

/**
 * Builds hydra's image world. `binds` are further host paths made visible
 * at the same path inside (read-write).
 */
export async function createImageWorld(binds: string[] = []): Promise<ImageWorld> {
  const baseEnv = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HYDRA_DENO: "/usr/local/bin/deno",
    DENO_DIR: `${IMAGE_TREE}/.cache/deno`,
  };
  const world = await createRootWorld("hydra-image-", async (l) => {
    // Libraries only: /usr/lib holds glibc, libnftables and their kin, and no program on PATH.
    await l.bind("/usr/lib", "/usr/lib", { ro: true });
    await l.bind("/usr/lib64", "/usr/lib64", { ro: true });
    for (const [link, to] of [["/lib", "usr/lib"], ["/lib64", "usr/lib64"], ["/bin", "usr/bin"]]) {
      await l.symlink(to, link);
    }
    await l.bind(denoBinary(), "/usr/local/bin/deno", { file: true, ro: true });
    await l.bind(await which("dash"), "/usr/bin/sh", { file: true, ro: true });
    for (const p of LAUNCHER_HELPERS) await l.bind(await which(p), `/usr/bin/${p}`, { file: true });
    await l.bind(REPO_ROOT, IMAGE_TREE);
    await l.bind("/dev", "/dev");
    await l.bind("/sys", "/sys");
    await l.bind("/run/netns", "/run/netns");
    await l.symlink("../run", "/var/run");
    await l.bind("/", HOST_ROOT);
    for (const path of binds) await l.bind(path, path);
    await l.proc();
  }, baseEnv);
  return { ...world, hydra: `${IMAGE_TREE}/bin/hydra`, baseEnv };
}
