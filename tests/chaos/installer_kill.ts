/**
 * kill -9 of `hydra install` mid-copy: each cycle installs the other of two
 * builds of a large executable (so every pass copies), kills the installer
 * at a random point, then runs it again as its restarted container would.
 * That run must succeed; afterwards the executable is the new build, whole,
 * with its mode; the conf, kubeconfig and manifest parse; no temporary or
 * backup file is left in the bin dir, the conf dir or the state dir.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { INSTALL_LOCK_NAME } from "../../install/reconcile.ts";
import { hydraLauncher, makeNode, removeNode } from "../install/helpers.ts";
import { median, runKillable } from "./kill.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

const SCENARIO = "kill-installer";

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Names a dead writer leaves: the installer's hidden temporary and backup files. */
function leftovers(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.name.startsWith(".") && e.name !== INSTALL_LOCK_NAME)
      .map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/** Runs `cycles` cycles. */
export async function runInstallerKill(
  report: ChaosReport,
  rng: Rng,
  cycles: number,
): Promise<void> {
  const node = await makeNode();
  try {
    // Two builds of 24 MiB (about a compiled hydra's size): copying one takes a while.
    const builds = [0, 1].map((i) => {
      const bytes = new Uint8Array(24 << 20);
      for (let o = 0; o < bytes.length; o += 65536) {
        crypto.getRandomValues(bytes.subarray(o, Math.min(bytes.length, o + 65536)));
      }
      bytes.set(new TextEncoder().encode(`#!/bin/sh\necho build${i}\nexit 0\n`));
      const path = join(node.root, `build${i}`);
      Deno.writeFileSync(path, bytes, { mode: 0o755 });
      return { path, sha: sha(bytes) };
    });
    const stateDir = join(node.confDir, "hydra.d");
    const install = (build: number, killAfterMs?: number) =>
      runKillable({
        program: hydraLauncher,
        args: ["install", ...node.flags, "--once", `--source=${builds[build].path}`],
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        killAfterMs,
        timeoutMs: 120_000,
      });
    const times: number[] = [];
    for (let i = 0; i < 2; i++) times.push((await install(i % 2)).ms);
    let current = 1;
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      const next = 1 - current;
      const killed = await install(next, rng.next() * median(times) * 1.3);
      if (killed.killed) report.counts.killed++;
      const again = await install(next);
      if (again.code !== 0) {
        report.find(
          "stuck",
          SCENARIO,
          `the run after the kill failed: ${again.stderr.trim()}`,
          cycle,
        );
        continue;
      }
      current = next;
      const exe = join(node.binDir, "hydra");
      const st = Deno.statSync(exe);
      if (sha(Deno.readFileSync(exe)) !== builds[next].sha || ((st.mode ?? 0) & 0o777) !== 0o755) {
        report.find(
          "stuck",
          SCENARIO,
          `the executable is not build ${next} whole with mode 0755`,
          cycle,
        );
      }
      for (
        const f of [
          "00-hydra.conflist",
          "hydra.d/hydra.kubeconfig",
          "hydra.d/install-manifest.json",
        ]
      ) {
        try {
          JSON.parse(Deno.readTextFileSync(join(node.confDir, f)));
        } catch (err) {
          report.find(
            "stuck",
            SCENARIO,
            `${f} does not parse after the recovery run: ${err}`,
            cycle,
          );
        }
      }
      for (const dir of [node.binDir, node.confDir, stateDir]) {
        for (const f of leftovers(dir)) {
          report.findOnce(
            "leakedFiles",
            f,
            SCENARIO,
            `${f.slice(node.root.length + 1)} left`,
            cycle,
          );
        }
      }
    }
  } finally {
    await removeNode(node);
  }
}
