/**
 * A local user other than root cannot stall bridge ADDs through the
 * per-bridge host lock: user nobody tries to take the lock of a bridge that
 * is in use (under every name a version of hydra gave its file), and the
 * next ADD on that bridge still completes.
 */

import assert from "node:assert/strict";
import { hostLockPath, LOCK_DIR } from "../../plugins/host_lock.ts";
import { containerId, hydraBin, mustInvoke, randomSubnet24, withWorld } from "./helpers.ts";

const NOBODY = "65534";

/** A process of user nobody trying to hold `path` locked for two minutes. */
function holdAsNobody(path: string): Deno.ChildProcess {
  return new Deno.Command("setpriv", {
    args: [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      "--clear-groups",
      "flock",
      "--exclusive",
      path,
      "sleep",
      "120",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Resolves with `p`, or with "timeout" after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

Deno.test("user nobody cannot hold a bridge's host lock, and a bridge ADD is never blocked by it", async () => {
  const bridge = `hbl${crypto.randomUUID().slice(0, 8)}`;
  const lockName = `bridge-${bridge}`;
  // Every name a version of hydra gave the file: the current one and the older `<name>.lock`.
  const paths = [hostLockPath(lockName), `${LOCK_DIR}/${lockName}.lock`];
  const holders: Deno.ChildProcess[] = [];
  try {
    await withWorld(2, async (w) => {
      const conf = {
        cniVersion: "1.1.0",
        name: "locknet",
        type: "hydra-bridge",
        bridge,
        ipam: { type: "host-local", subnet: randomSubnet24(), dataDir: `${w.dir}/ipam` },
      };
      const add = (i: number) =>
        mustInvoke(w.host, `${hydraBin}/hydra-bridge`, {
          command: "ADD",
          containerId: containerId(),
          netns: w.pods[i].path,
          ifName: "eth0",
        }, conf);
      await add(0); // the bridge and its lock file exist from here on

      for (const path of paths) holders.push(holdAsNobody(path));
      // Give a holder that got its lock time to take it.
      await new Promise((r) => setTimeout(r, 500));

      // A real stall lasts the holder's two minutes; 30 s is far beyond a normal ADD.
      const second = await within(add(1), 30_000);
      assert.notEqual(second, "timeout", "the second ADD waited on a lock user nobody holds");

      for (const [i, h] of holders.entries()) {
        const done = await within(h.output(), 2_000);
        assert.notEqual(done, "timeout", `nobody holds ${paths[i]}`);
        if (done !== "timeout") assert.notEqual(done.code, 0, `nobody locked ${paths[i]}`);
      }
    });
  } finally {
    for (const h of holders) {
      try {
        h.kill("SIGKILL");
      } catch {
        // already gone
      }
      await h.status;
    }
    for (const path of paths) await Deno.remove(path).catch(() => {});
  }
});
