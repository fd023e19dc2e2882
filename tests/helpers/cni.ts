/**
 * Running a program the way a container runtime runs a CNI plugin: exactly
 * the environment given, the config written to its stdin, and its output
 * collected.
 *
 * @module
 */

/** What a program printed and how it exited. */
export interface ExecOutput {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON; undefined when it is empty or not JSON. */
  json?: Record<string, unknown>;
}

/** The CNI_* variables of one invocation. */
export interface CniInvocation {
  command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION";
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  /** CNI_PATH directories. */
  path: string[];
}

/** A runtime's minimal environment for `inv`: a system PATH and the CNI_* variables given. */
export function cniEnv(inv: CniInvocation): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: inv.command,
    CNI_PATH: inv.path.join(":"),
  };
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns !== undefined) env.CNI_NETNS = inv.netns;
  if (inv.ifName !== undefined) env.CNI_IFNAME = inv.ifName;
  if (inv.args !== undefined) env.CNI_ARGS = inv.args;
  return env;
}

/**
 * Runs `program args` with `stdin` on its standard input and waits for it.
 * The environment is exactly `env` unless `inheritEnv` adds it to this
 * process's own.
 */
export async function execWithStdin(
  program: string,
  args: string[],
  env: Record<string, string>,
  stdin: string,
  inheritEnv = false,
): Promise<ExecOutput> {
  const child = new Deno.Command(program, {
    args,
    env,
    clearEnv: !inheritEnv,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await output;
  const decoder = new TextDecoder();
  const result: ExecOutput = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (result.stdout.trim()) {
    try {
      result.json = JSON.parse(result.stdout);
    } catch {
      // not JSON: left for the test to report
    }
  }
  return result;
}
