/**
 * Process plumbing for the test peers: long-running programs started in their own process group
 * with output in a log file, commands run to completion, polling, free loopback ports.
 *
 * @module
 */

/** A long-running program started by {@link spawnDaemon}. */
export interface Daemon {
  /** Short name used in errors. */
  name: string;
  /** Process id; also the id of the process group it leads. */
  pid: number;
  /** File receiving its stdout and stderr. */
  logPath: string;
  /** Resolves when the process exits; absent for detached daemons. */
  status?: Promise<Deno.CommandStatus>;
}

/** Options for {@link spawnDaemon}. */
export interface DaemonOptions {
  /** Arguments after the program. */
  args: string[];
  /** File that receives stdout and stderr (appended). */
  logPath: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /**
   * Leave the process running after this Deno process exits (for `cluster up`). Its exit is then
   * not awaited, so it is stopped later by pid only.
   */
  detach?: boolean;
}

/**
 * Starts a program as the leader of a new process group, with stdout and stderr appended to a log
 * file. Stopping the group ({@link stopProcessGroup}) also stops helpers it forked.
 */
export function spawnDaemon(name: string, program: string, opts: DaemonOptions): Daemon {
  // A tiny shell redirects output to the log and then execs the program, so the pid is the
  // program's own. Unless detached, setpriv arranges SIGTERM for the program when this process
  // dies without stopping it (a killed test run), so nothing outlives its owner.
  const command = opts.detach ? [program] : ["setpriv", "--pdeathsig", "TERM", "--", program];
  const child = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'log=$1; shift; exec "$@" >>"$log" 2>&1',
      "sh",
      opts.logPath,
      ...command,
      ...opts.args,
    ],
    env: opts.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  if (opts.detach) {
    child.unref();
    return { name, pid: child.pid, logPath: opts.logPath };
  }
  return { name, pid: child.pid, logPath: opts.logPath, status: child.status };
}

/** Result of {@link runCommand}. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link runCommand}. */
export interface RunOptions {
  env?: Record<string, string>;
  /** Text written to stdin. */
  stdin?: string;
  /** Do not throw on a non-zero exit. */
  allowFailure?: boolean;
  cwd?: string;
}

/** Runs a command to completion; throws with its stderr on failure unless `allowFailure`. */
export async function runCommand(
  program: string,
  args: string[],
  opts: RunOptions = {},
): Promise<CommandResult> {
  const child = new Deno.Command(program, {
    args,
    env: opts.env,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (!out.success && !opts.allowFailure) {
    throw new Error(
      `${program} ${args.join(" ")} failed (exit ${out.code}): ${result.stderr.trim()}`,
    );
  }
  return result;
}

/** Members of a process group that are still alive (zombies count as gone). */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readProcStat(Number(entry.name));
    if (stat && stat.pgrp === pgid && stat.state !== "Z") members.push(Number(entry.name));
  }
  return members;
}

/** Fields of /proc/<pid>/stat that process cleanup needs. */
interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot; tells a process from a later one with the same pid. */
  startTime: string;
}

/** Identifies a live process across pid reuse. */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** The identity of this Deno process. */
export function selfIdentity(): ProcessIdentity {
  return { pid: Deno.pid, startTime: readProcStat(Deno.pid)?.startTime ?? "" };
}

/** True while the identified process is still running. */
export function isAlive(id: ProcessIdentity): boolean {
  const stat = readProcStat(id.pid);
  return stat !== undefined && stat.state !== "Z" && stat.startTime === id.startTime;
}

function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses; fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: fields[0],
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    startTime: fields[19],
  };
}

/** Pids of processes whose command line contains `needle`. */
export function processesWithArg(needle: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(needle)) found.push(Number(entry.name));
    } catch {
      // Process went away while scanning.
    }
  }
  return found;
}

function trySignal(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Stops a process group: SIGTERM to the whole group, then SIGKILL to whatever is left after
 * `graceMs`. Returns once no member is alive. Safe to call for a group that is already gone.
 */
export async function stopProcessGroup(pgid: number, graceMs = 5000): Promise<void> {
  if (pgid <= 1) throw new Error(`refusing to signal process group ${pgid}`);
  if (processGroupMembers(pgid).length === 0) return;
  trySignal(-pgid, "SIGTERM");
  const gone = await poll(() => processGroupMembers(pgid).length === 0, graceMs);
  if (gone) return;
  trySignal(-pgid, "SIGKILL");
  if (!await poll(() => processGroupMembers(pgid).length === 0, 5000)) {
    throw new Error(`process group ${pgid} survived SIGKILL`);
  }
}

/** Kills single processes (SIGKILL) and waits until they are gone. */
export async function killProcesses(pids: number[]): Promise<void> {
  for (const pid of pids) trySignal(pid, "SIGKILL");
  await poll(() => pids.every((pid) => isGone(pid)), 5000);
}

function isGone(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat === undefined || stat.state === "Z";
}

/** Calls `check` every `intervalMs` until it returns true or `timeoutMs` passes. */
export async function poll(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Waits until `check` returns true; throws naming `what` after `timeoutMs`. If `daemon` exits
 * meanwhile, fails at once with the end of its log.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  daemon?: Daemon,
): Promise<void> {
  const ok = await poll(async () => {
    if (daemon && isGone(daemon.pid)) throw new Error(`${daemon.name} exited: ${logTail(daemon)}`);
    return await check();
  }, timeoutMs);
  if (!ok) {
    throw new Error(
      `timed out after ${timeoutMs}ms waiting for ${what}${
        daemon ? `; ${daemon.name} log: ${logTail(daemon)}` : ""
      }`,
    );
  }
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(daemon: Pick<Daemon, "logPath">, lines = 20): string {
  try {
    return Deno.readTextFileSync(daemon.logPath).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Removes a path recursively; ignores one already gone. */
export async function removeAll(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
