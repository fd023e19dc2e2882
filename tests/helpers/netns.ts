/**
 * Test helpers for real network namespaces. Tests may use the `ip` command
 * to build and observe state; the product never does.
 *
 * Every namespace and host link made here carries a unique name and is
 * removed in `finally`, also when the test fails.
 *
 * @module
 */

let counter = 0;

/** A short unique name (<= 15 bytes) with the given prefix (<= 6 bytes). */
export function uniqueName(prefix = "hy"): string {
  counter++;
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `${prefix}${(Deno.pid % 1000).toString(36)}${counter.toString(36)}${rand}`.slice(0, 15);
}

/** Runs a command, returning stdout; throws with stderr on failure. */
export async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${stderr.trim()}`);
  }
  return stdout;
}

/** Runs a command, ignoring failure (for cleanup). */
export async function tryRun(cmd: string, ...args: string[]): Promise<void> {
  await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
}

/** A named network namespace made for a test. */
export interface TestNetns {
  name: string;
  /** /var/run/netns/<name> */
  path: string;
  /** Runs `ip -j <args>` inside the namespace and parses the JSON. */
  ipJson<T = unknown>(...args: string[]): Promise<T>;
  /** Runs a command inside the namespace. */
  exec(cmd: string, ...args: string[]): Promise<string>;
}

/** Creates a named netns with `lo` up. */
export async function createNetns(prefix = "hyt"): Promise<TestNetns> {
  const name = uniqueName(prefix);
  await run("ip", "netns", "add", name);
  await run("ip", "-n", name, "link", "set", "lo", "up");
  return netnsHandle(name);
}

function netnsHandle(name: string): TestNetns {
  return {
    name,
    path: `/var/run/netns/${name}`,
    async ipJson<T>(...args: string[]): Promise<T> {
      const text = await run("ip", "-n", name, "-j", ...args);
      return (text.trim() ? JSON.parse(text) : []) as T;
    },
    exec: (cmd, ...args) => run("ip", "netns", "exec", name, cmd, ...args),
  };
}

/** Deletes a netns made by {@link createNetns}; ignores one already gone. */
export async function deleteNetns(ns: TestNetns): Promise<void> {
  await tryRun("ip", "netns", "delete", ns.name);
}

/** Runs `fn` with `count` fresh namespaces, deleting them afterwards. */
export async function withNetns<T>(
  count: number,
  fn: (...ns: TestNetns[]) => Promise<T>,
): Promise<T> {
  const made: TestNetns[] = [];
  try {
    for (let i = 0; i < count; i++) made.push(await createNetns());
    return await fn(...made);
  } finally {
    for (const ns of made) await deleteNetns(ns);
  }
}

/** Runs `ip -j <args>` in the host namespace. */
export async function hostIpJson<T = unknown>(...args: string[]): Promise<T> {
  const text = await run("ip", "-j", ...args);
  return (text.trim() ? JSON.parse(text) : []) as T;
}

/** Makes a temporary directory removed after `fn`. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
