/**
 * Fixtures for `hydra install` tests: a fake node (bin dir, conf dir with a
 * default network conf, a projected ServiceAccount volume laid out as the
 * kubelet lays it out), runs of the real command line, and snapshots of
 * directories to compare before and after.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, join, relative } from "node:path";
import { INSTALL_LOCK_NAME } from "../../install/reconcile.ts";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** The launcher that runs hydra from source. */
export const hydraLauncher: string = join(repoRoot, "bin", "hydra");

/** A PEM-shaped CA (content is not checked by the installer beyond its shape). */
export const FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

/** A default network conf as a typical cluster ships it. */
export const DEFAULT_CONF = {
  cniVersion: "1.0.0",
  name: "podnet",
  plugins: [
    { type: "bridge", bridge: "cni0", ipam: { type: "host-local", subnet: "10.244.0.0/24" } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

/** A fake node's directories. */
export interface Node {
  root: string;
  binDir: string;
  confDir: string;
  /** The projected ServiceAccount volume. */
  saDir: string;
  tokenFile: string;
  caFile: string;
  /** The default conf's path. */
  defaultConf: string;
  /** Flags pointing `hydra install` at this node. */
  flags: string[];
}

let generation = 0;

/**
 * Writes token and CA into `saDir` the way the kubelet updates a projected
 * volume: a fresh timestamped directory, `..data` swapped by rename, and
 * `token`/`ca.crt` symlinks through `..data`.
 */
export async function writeProjectedToken(saDir: string, token: string, ca = FAKE_CA) {
  const stamp = `..${Date.now()}_${++generation}`;
  const dataDir = join(saDir, stamp);
  await Deno.mkdir(dataDir);
  await Deno.writeTextFile(join(dataDir, "token"), token);
  await Deno.writeTextFile(join(dataDir, "ca.crt"), ca);
  let old: string | undefined;
  try {
    old = await Deno.readLink(join(saDir, "..data"));
  } catch { /* first write */ }
  await Deno.symlink(stamp, join(saDir, "..data_tmp"));
  await Deno.rename(join(saDir, "..data_tmp"), join(saDir, "..data"));
  for (const name of ["token", "ca.crt"]) {
    try {
      await Deno.lstat(join(saDir, name));
    } catch {
      await Deno.symlink(join("..data", name), join(saDir, name));
    }
  }
  if (old) await Deno.remove(join(saDir, old), { recursive: true });
}

/** Makes a fake node under a fresh temp dir; remove it with {@link removeNode}. */
export async function makeNode(
  opts: { defaultConf?: unknown; token?: string; otherPlugins?: boolean } = {},
): Promise<Node> {
  const root = await Deno.makeTempDir({ prefix: "hydra-install-test-" });
  const binDir = join(root, "opt-cni-bin");
  const confDir = join(root, "etc-cni-net.d");
  const saDir = join(root, "serviceaccount");
  await Deno.mkdir(binDir);
  await Deno.mkdir(confDir);
  await Deno.mkdir(saDir);
  if (opts.otherPlugins !== false) {
    // Plugins of the default network, which the installer must leave alone.
    for (const name of ["bridge", "host-local", "portmap"]) {
      await Deno.writeTextFile(join(binDir, name), `#!/bin/sh\necho ${name}\n`, { mode: 0o755 });
    }
  }
  const defaultConf = join(confDir, "10-podnet.conflist");
  if (opts.defaultConf !== null) {
    const conf = opts.defaultConf ?? DEFAULT_CONF;
    await Deno.writeTextFile(
      defaultConf,
      typeof conf === "string" ? conf : JSON.stringify(conf, null, 2),
    );
  }
  if (opts.token !== "") await writeProjectedToken(saDir, opts.token ?? "token-one");
  const tokenFile = join(saDir, "token");
  const caFile = join(saDir, "ca.crt");
  return {
    root,
    binDir,
    confDir,
    saDir,
    tokenFile,
    caFile,
    defaultConf,
    flags: [
      `--bin-dir=${binDir}`,
      `--conf-dir=${confDir}`,
      `--token-file=${tokenFile}`,
      `--ca-file=${caFile}`,
      "--server=https://10.96.0.1:443",
    ],
  };
}

/** Removes a fake node. */
export async function removeNode(node: Node): Promise<void> {
  await Deno.remove(node.root, { recursive: true }).catch(() => {});
}

/** A finished run of the command line. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stderr parsed as JSON lines. */
  logs: Record<string, unknown>[];
}

/** Parses JSON log lines; throws on any line that is not JSON. */
export function parseLogs(stderr: string): Record<string, unknown>[] {
  return stderr.split("\n").filter((l) => l.trim() !== "").map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`stderr line is not JSON: ${l}`);
    }
  });
}

/** Runs `hydra install <args>` through the launcher and waits for it. */
export async function runInstall(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(hydraLauncher, {
    args: ["install", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, stdout, stderr, logs: parseLogs(stderr) } satisfies RunResult;
}

/** A `hydra install` left running (watch loop). */
export interface RunningInstall {
  pid: number;
  /** Log lines so far. */
  logs: Record<string, unknown>[];
  /** Waits until a log line matches. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, what: string): Promise<void>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<RunResult>;
  /** Waits for the exit. */
  wait(): Promise<RunResult>;
}

/**
 * Without an address of its own a running installer would take its default port, which
 * installers of tests running at the same time on this machine may hold: none unless asked.
 */
function ownEndpoint(args: string[]): string[] {
  const asked = args.some((a) => a.startsWith("--health-addr") || a.startsWith("--listen"));
  return asked ? args : [...args, "--health-addr=off"];
}

/** Starts `hydra install <args>` without waiting for it. */
export function startInstall(args: string[]): RunningInstall {
  const child = new Deno.Command(hydraLauncher, {
    args: ["install", ...ownEndpoint(args)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  const stderrDone = (async () => {
    let pending = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      logs.push(...parseLogs(lines.join("\n")));
    }
  })();
  const stdoutText = new Response(child.stdout).text();
  let finished: Promise<RunResult> | undefined;
  const finish = () =>
    finished ??= (async () => {
      const status = await child.status;
      await stderrDone;
      return { code: status.code, stdout: await stdoutText, stderr, logs: parseLogs(stderr) };
    })();
  return {
    pid: child.pid,
    logs,
    async waitForLog(pred, what) {
      await waitFor(() => logs.some(pred), what, async () => {
        const status = await Promise.race([child.status, Promise.resolve(undefined)]);
        if (status) throw new Error(`hydra install exited (${status.code}): ${stderr}`);
      });
    },
    wait: finish,
    async stop(signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      return await finish();
    },
  };
}

/**
 * Polls `cond` until it holds; fails after a generous bound (a hung
 * installer must not hang the suite). `check` may throw to fail early.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  check?: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await cond())) {
    if (check) await check();
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One entry of a directory snapshot. */
export interface SnapEntry {
  type: "file" | "dir" | "symlink";
  mode: number;
  sha256?: string;
  target?: string;
  ino?: number;
  mtime?: number;
}

/**
 * Everything under `dirs`, keyed by path relative to `base`: type, mode,
 * content hash, link target, and for files and links inode and mtime
 * (directories' mtimes change whenever an entry comes and goes).
 */
export async function snapshot(
  base: string,
  ...dirs: string[]
): Promise<Record<string, SnapEntry>> {
  const snap: Record<string, SnapEntry> = {};
  async function walk(path: string) {
    // The install lock: an empty root-only file every run (even one that changes nothing)
    // makes in the bin dir and only uninstall removes; it holds no state.
    if (basename(path) === INSTALL_LOCK_NAME) return;
    const st = await Deno.lstat(path);
    const key = relative(base, path) || ".";
    const mode = (st.mode ?? 0) & 0o7777;
    if (st.isSymlink) {
      snap[key] = {
        type: "symlink",
        mode,
        target: await Deno.readLink(path),
        ino: st.ino ?? undefined,
        mtime: st.mtime?.getTime(),
      };
    } else if (st.isDirectory) {
      snap[key] = { type: "dir", mode };
      for await (const e of Deno.readDir(path)) await walk(join(path, e.name));
    } else {
      const data = await Deno.readFile(path);
      snap[key] = {
        type: "file",
        mode,
        sha256: createHash("sha256").update(data).digest("hex"),
        ino: st.ino ?? undefined,
        mtime: st.mtime?.getTime(),
      };
    }
  }
  for (const d of dirs) {
    try {
      await walk(d);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return snap;
}

/** The messages of error lines in a run's logs. */
export function errorMessages(logs: Record<string, unknown>[]): string[] {
  return logs.filter((l) => l.level === "error").map((l) => String(l.msg));
}

/** Paths a run reported as changed (created, replaced, chmod, removed). */
export function changedPaths(logs: Record<string, unknown>[]): string[] {
  return logs.filter((l) => typeof l.action === "string").map((l) => String(l.path));
}
