/**
 * `hydra host-exec ROOT PROGRAM`: runs PROGRAM chrooted into ROOT, in this
 * process's place. The engine execs delegate plugins through it when the
 * meta-CNI conf sets `chrootDir` (Multus thick's key): in hydra's container
 * the host's root is mounted at ROOT, so a reference plugin such as portmap
 * or firewall finds the host's iptables and its other files, while hydra's
 * image carries none of them.
 *
 * The process changes its root to ROOT and its working folder to the new
 * `/`, restores SIGPIPE's default action (Deno's runtime ignores it, and an
 * ignored signal stays ignored across exec), and replaces itself with
 * PROGRAM (same path, now looked up under ROOT) with the environment it was
 * given, except PATH, which becomes a host's usual one (the image's PATH
 * means nothing under the host's root, and plugins look up iptables & co.
 * on it); stdin, stdout and stderr pass through untouched. PROGRAM must be
 * an absolute path. A failure before the exec is printed as a CNI error
 * (code 999) on stdout, since the caller reads it as the plugin's output,
 * and the exit status is 1.
 *
 * @module
 */

const LIBC = {
  chroot: { parameters: ["buffer"], result: "i32" },
  chdir: { parameters: ["buffer"], result: "i32" },
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const SIGPIPE = 13;

/** Variables the launcher adds for itself; the plugin gets the caller's environment. */
const OWN_VARIABLES = new Set(["HYDRA_ARGV0", "PATH"]);

/** PATH under the host's root. */
const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

type Libc = Deno.DynamicLibrary<typeof LIBC>["symbols"];

function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A NULL-terminated array of C strings; `keep` holds the strings alive. */
function cStringArray(items: string[], keep: Uint8Array[]): BigUint64Array<ArrayBuffer> {
  const out = new BigUint64Array(items.length + 1);
  items.forEach((item, i) => {
    const s = cString(item);
    keep.push(s);
    out[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  return out;
}

function errno(libc: Libc): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

function fail(msg: string): number {
  console.log(JSON.stringify({ cniVersion: "1.1.0", code: 999, msg: `host-exec: ${msg}` }));
  return 1;
}

const USAGE = `Usage: hydra host-exec ROOT PROGRAM

Runs PROGRAM chrooted into ROOT in this process's place (stdin, stdout,
stderr and the environment pass through). Used by the meta-CNI to exec
delegate plugins on the host's root when its conf sets "chrootDir".`;

/** Runs `hydra host-exec`; returns only when it could not exec. */
export function runHostExec(args: string[]): number {
  if (args.length === 1 && (args[0] === "--help" || args[0] === "-h")) {
    console.log(USAGE);
    return 0;
  }
  if (args.length !== 2) {
    console.error(`hydra host-exec: expected ROOT and PROGRAM\n\n${USAGE}`);
    return 2;
  }
  const [root, program] = args;
  if (!root.startsWith("/") || !program.startsWith("/")) {
    return fail(`ROOT and PROGRAM must be absolute paths, got "${root}" and "${program}"`);
  }
  const libc = Deno.dlopen("libc.so.6", LIBC).symbols;
  if (libc.chroot(cString(root)) !== 0) return fail(`chroot ${root}: errno ${errno(libc)}`);
  if (libc.chdir(cString("/")) !== 0) return fail(`chdir / in ${root}: errno ${errno(libc)}`);
  libc.signal(SIGPIPE, null);
  const env = Object.entries(Deno.env.toObject())
    .filter(([k]) => !OWN_VARIABLES.has(k))
    .map(([k, v]) => `${k}=${v}`);
  env.push(`PATH=${HOST_PATH}`);
  const keep: Uint8Array[] = [];
  const argv = cStringArray([program], keep);
  const envp = cStringArray(env, keep);
  libc.execve(cString(program), argv, envp);
  const code = errno(libc);
  const why = code === 2 ? "no such file under the host root (is it at the same path there?)" : "";
  return fail(`exec ${program} in ${root}: errno ${code}${why ? `: ${why}` : ""}`);
}
