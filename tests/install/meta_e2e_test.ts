/**
 * The installed meta-CNI works: after `hydra install` into temp dirs, libcni
 * (cnitool) loads the conf the installer wrote, exec's the installed `hydra`,
 * and the pod's namespace gets the default network's interface from the
 * delegate — the same path a container runtime takes.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { peerBin } from "../infra/peers.ts";
import { createHash } from "node:crypto";
import { createNetns, deleteNetns, tryRun, uniqueName } from "../helpers/netns.ts";
import { makeNode, removeNode, repoRoot, runInstall } from "./helpers.ts";

/** The container ID cnitool derives from a netns path. */
function containerId(netns: string): string {
  return `cnitool-${createHash("sha512").update(netns).digest("hex")}`.slice(0, 25);
}

Deno.test("libcni runs the installed meta-CNI conf: the default network attaches and detaches", async () => {
  const bridge = uniqueName("hyb");
  const ns = await createNetns("hyi");
  const stateDir = await Deno.makeTempDir({ prefix: "hydra-install-e2e-" });
  const defaultConf = {
    cniVersion: "1.0.0",
    name: "podnet",
    plugins: [{
      type: "bridge",
      bridge,
      isGateway: true,
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: "10.231.7.0/24" }]],
        dataDir: join(stateDir, "ipam"),
      },
    }],
  };
  const node = await makeNode({ defaultConf, otherPlugins: false });
  try {
    const install = await runInstall([
      ...node.flags,
      "--once",
      `--source=${join(repoRoot, "bin", "hydra")}`,
      `--meta-json=${JSON.stringify({ cacheDir: join(stateDir, "cache") })}`,
      "--no-kubeconfig",
    ]);
    assert.equal(install.code, 0, install.stderr);

    const env = {
      NETCONFPATH: node.confDir,
      // hydra from the installed bin dir first; the reference plugins after it.
      CNI_PATH: `${node.binDir}:/usr/lib/cni`,
    };
    const cnitool = async (verb: string) => {
      const out = await new Deno.Command(peerBin("cnitool"), {
        args: [verb, "hydra", ns.path],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      assert.ok(
        out.success,
        `cnitool ${verb}: ${dec.decode(out.stderr)} ${dec.decode(out.stdout)}`,
      );
      return dec.decode(out.stdout);
    };
    const result = JSON.parse(await cnitool("add"));
    assert.equal(result.ips[0].address.split("/")[0].startsWith("10.231.7."), true);
    const addrs = await ns.ipJson<{ ifname: string; addr_info: { local: string }[] }[]>(
      "addr",
      "show",
      "eth0",
    );
    assert.equal(addrs[0].addr_info.some((a) => a.local.startsWith("10.231.7.")), true);

    await cnitool("del");
    const links = await ns.ipJson<{ ifname: string }[]>("link", "show");
    assert.deepEqual(links.map((l) => l.ifname), ["lo"]);
  } finally {
    await deleteNetns(ns);
    await tryRun("ip", "link", "delete", bridge);
    await removeNode(node);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    // cnitool keeps libcni's cache in its default place; DEL removes the entry, a failed run
    // may not have.
    const cacheName = `hydra-${containerId(ns.path)}-eth0`;
    await Deno.remove(join("/var/lib/cni/results", cacheName)).catch(() => {});
  }
});
