/**
 * Running a program the way the runtime does, and killing it with SIGKILL
 * part-way: at a chosen moment after it starts, or never. Whether the kill
 * landed (the program was still running) is reported, so a run counts only
 * real kills.
 *
 * @module
 */

/** How a killable run ended. */
export interface KillableOutcome {
  /** It was still running when SIGKILL was sent. */
  killed: boolean;
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time until it ended, ms. */
  ms: number;
}

/** What to run and where. */
export interface KillableRun {
  program: string;
  args?: string[];
  env: Record<string, string>;
  stdin?: string;
  /** Send SIGKILL this many ms after start; undefined: let it finish. */
  killAfterMs?: number;
  /** Give up (SIGKILL, counted as not finishing) after this long; 60 s. */
  timeoutMs?: number;
}

/** Runs `r`, killing it when asked; never throws for how the program ended. */
export async function runKillable(
  r: KillableRun,
): Promise<KillableOutcome & { timedOut: boolean }> {
  const started = performance.now();
  const child = new Deno.Command(r.program, {
    args: r.args ?? [],
    env: r.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  let killed = false;
  let timedOut = false;
  const kill = (why: "fault" | "timeout") => {
    if (exited) return;
    try {
      child.kill("SIGKILL");
      if (why === "fault") killed = true;
      else timedOut = true;
    } catch {
      // exited meanwhile
    }
  };
  const faultTimer = r.killAfterMs === undefined
    ? undefined
    : setTimeout(() => kill("fault"), r.killAfterMs);
  const guard = setTimeout(() => kill("timeout"), r.timeoutMs ?? 60_000);
  const output = child.output();
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(r.stdin ?? ""));
    await w.close();
  } catch {
    // killed before it read its input
  }
  const out = await output;
  exited = true;
  clearTimeout(faultTimer);
  clearTimeout(guard);
  const dec = new TextDecoder();
  return {
    // A kill counts only when it ended the program (not when it raced the exit).
    killed: killed && out.signal === "SIGKILL",
    timedOut,
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** The median of `xs` (0 for none). */
export function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
