import assert from "node:assert/strict";
import { DaemonUsageError, parseDaemonArgs } from "./node_main.ts";

const env = (vars: Record<string, string> = {}) =>
  ({ get: (k: string) => vars[k] }) as unknown as Deno.Env;

Deno.test("daemon options: hot plug off unless the flag or HYDRA_HOTPLUG says on", () => {
  const off = parseDaemonArgs([], env());
  assert.equal(off.hotplug, false);
  assert.equal(off.cacheDir, "/var/lib/cni/hydra");
  assert.equal(off.criSocket, "/run/containerd/containerd.sock");
  assert.equal(parseDaemonArgs([], env({ HYDRA_HOTPLUG: "on" })).hotplug, true);
  assert.equal(parseDaemonArgs(["--hotplug=off"], env({ HYDRA_HOTPLUG: "on" })).hotplug, false);
  const on = parseDaemonArgs(
    ["--hotplug", "on", "--cache-dir=/c", "--cri-socket=/run/crio/crio.sock"],
    env(),
  );
  assert.deepEqual([on.hotplug, on.cacheDir, on.criSocket], [true, "/c", "/run/crio/crio.sock"]);
  assert.throws(() => parseDaemonArgs(["--hotplug=yes"], env()), DaemonUsageError);
  assert.throws(() => parseDaemonArgs([], env({ HYDRA_HOTPLUG: "1" })), /on or off/);
  assert.throws(() => parseDaemonArgs(["--cri-socket=crio.sock"], env()), /absolute path/);
});
