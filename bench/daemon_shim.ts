/**
 * What a `daemonExec` meta-CNI exec costs the exec'd process itself: the
 * runtime forks `bin/hydra` with a conf asking for daemonExec, the process
 * forwards to the node daemon and prints its answer. A stand-in daemon in
 * this process answers every invocation at once (an empty DEL success), so
 * the figure is the shim alone: launcher, Deno start, entry module, socket
 * round trip. Beside it, the floor: `deno run` of an empty file with the
 * same Deno and flags. Runs alternate between the two so load changes hit
 * both alike. Wall time from just before the fork to the exit; CPU time of
 * the process tree. Prints JSON.
 *
 *   deno run -A bench/daemon_shim.ts [--execs 100] [--warmup 5]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { isFresh as bundleIsFresh } from "../tools/bundle.ts";
import { childrenCpuMs } from "./cni_exec.ts";
import { machineInfo } from "./machine.ts";
import { summarize } from "./stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    execs: { type: "string", default: "100" },
    warmup: { type: "string", default: "5" },
  },
});
const EXECS = Number(flags.execs);
const WARMUP = Number(flags.warmup);
const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const encoder = new TextEncoder();

/** The Deno bin/hydra runs (the tree's own when installed under tools/). */
function launcherDeno(): string {
  try {
    return Deno.realPathSync(`${root}/tools/node_modules/.bin/deno`);
  } catch {
    return Deno.execPath();
  }
}

/** A stand-in for `hydra daemon` that answers every request with an empty success. */
function stubDaemon(path: string) {
  const answer = encoder.encode(JSON.stringify({ ok: true, body: { stdout: "", code: 0 } }) + "\n");
  const listener = Deno.listen({ transport: "unix", path });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            // One request per exec, one line: answer when its end arrives.
            if (buf.subarray(0, n).includes(10)) await conn.write(answer);
          }
        } catch {
          // the shim went away
        } finally {
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      })();
    }
  })();
  return {
    async close() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

interface Run {
  exe: string;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
}

async function timed(run: Run): Promise<{ ms: number; cpuMs: number }> {
  const cpu0 = childrenCpuMs();
  const t0 = performance.now();
  const child = new Deno.Command(run.exe, {
    args: run.args,
    env: run.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const w = child.stdin.getWriter();
  await w.write(run.stdin);
  await w.close();
  const out = await output;
  const ms = performance.now() - t0;
  if (out.code !== 0 || out.stdout.length !== 0) {
    throw new Error(
      `${run.exe} exited ${out.code}: ${new TextDecoder().decode(out.stdout)}` +
        new TextDecoder().decode(out.stderr),
    );
  }
  return { ms, cpuMs: childrenCpuMs() - cpu0 };
}

const machine = await machineInfo();
const dir = await Deno.makeTempDir({ prefix: "hydra-bench-shim-" });
const daemon = stubDaemon(`${dir}/daemon.sock`);
try {
  const deno = launcherDeno();
  const baseEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    DENO_DIR: `${root}/.cache/deno`,
  };
  await Deno.writeTextFile(`${dir}/empty.js`, "");
  const runs: Record<string, Run> = {
    shim_forward: {
      exe: `${root}/bin/hydra`,
      args: [],
      env: {
        ...baseEnv,
        // The same Deno as the floor's.
        HYDRA_DENO: deno,
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "bench-shim",
        CNI_IFNAME: "eth0",
        CNI_PATH: `${root}/bin`,
      },
      stdin: encoder.encode(JSON.stringify({
        cniVersion: "1.1.0",
        name: "pods",
        type: "hydra",
        daemonExec: true,
        daemonSocket: `${dir}/daemon.sock`,
      })),
    },
    deno_empty: {
      exe: deno,
      args: ["run", "--quiet", "--no-prompt", "-A", "--no-config", `${dir}/empty.js`],
      env: baseEnv,
      stdin: new Uint8Array(),
    },
  };
  const samples: Record<string, { ms: number[]; cpuMs: number[] }> = {};
  for (let i = 0; i < WARMUP + EXECS; i++) {
    for (const [key, run] of Object.entries(runs)) {
      const r = await timed(run);
      if (i < WARMUP) continue;
      const s = samples[key] ??= { ms: [], cpuMs: [] };
      s.ms.push(r.ms);
      s.cpuMs.push(r.cpuMs);
    }
  }
  const cases = Object.fromEntries(
    Object.entries(samples).map((
      [k, s],
    ) => [k, { wallMs: summarize(s.ms), cpuMs: summarize(s.cpuMs) }]),
  );
  console.log(JSON.stringify(
    {
      bench: "daemon_shim",
      machine,
      setup: {
        execs: EXECS,
        warmup: WARMUP,
        launcher: (await bundleIsFresh())
          ? "bin/hydra running the bundled CNI build"
          : "bin/hydra running main.ts (the bundle is stale or missing)",
        daemon: "stand-in answering every invocation at once",
      },
      cases,
      shimOverMedianMs: Math.round(
        (cases.shim_forward.wallMs.median - cases.deno_empty.wallMs.median) * 1000,
      ) / 1000,
    },
    null,
    2,
  ));
} finally {
  await daemon.close();
  await Deno.remove(dir, { recursive: true });
}
