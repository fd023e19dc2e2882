/**
 * The configuration deploy/hydra-meta.yaml installs is the one the pod
 * start benchmark measures: the benchmark runs `hydra install` with the
 * installer container's own arguments (only a test node's paths put over
 * the host's), and the conf that writes asks the node daemon to run whole
 * invocations (the fast path), falling back to the exec'd hydra when no
 * daemon answers. (The benchmark itself checks that every ADD and DEL of
 * its run went through the daemon.)
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { deployedArgs } from "../../bench/deployed.ts";
import { hydraMetaInstallArgs, installHydraMeta } from "../../bench/pod_start_arms.ts";
import { withTempDir } from "../helpers/netns.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

async function installed(tmp: string) {
  const confDir = join(tmp, "net.d");
  await Deno.mkdir(confDir);
  await Deno.writeTextFile(
    join(confDir, "10-default.conf"),
    JSON.stringify({ cniVersion: "1.0.0", name: "default", type: "bridge", bridge: "cni0" }),
  );
  await Deno.writeTextFile(join(tmp, "token"), "a-token");
  await Deno.writeTextFile(join(tmp, "ca.crt"), CA);
  const paths = {
    dir: tmp,
    confDir,
    tokenFile: join(tmp, "token"),
    caFile: join(tmp, "ca.crt"),
    server: "https://192.0.2.1:6443",
    socket: join(tmp, "daemon.sock"),
  };
  return { paths, confDir };
}

Deno.test("the benchmark installs hydra with deploy/hydra-meta.yaml's installer arguments", async () => {
  await withTempDir(async (tmp) => {
    const { paths } = await installed(tmp);
    const args = hydraMetaInstallArgs(paths);
    // Paths of the test node, its daemon socket, and its identity (a given token file rather
    // than one minted for the hydra-node account).
    const replaced = new Set([
      "bin-dir",
      "conf-dir",
      "health-addr",
      "meta-json",
      "node-service-account",
    ]);
    for (const a of deployedArgs("hydra-meta.yaml", "install")) {
      const name = /^--([^=]+)/.exec(a)?.[1];
      if (name && replaced.has(name)) continue;
      assert.ok(args.includes(a), `deployed argument ${a} missing from the benchmark's`);
    }
  });
});

Deno.test("deploy/hydra-meta.yaml's conf runs every invocation in the node daemon", async () => {
  await withTempDir(async (tmp) => {
    const { paths, confDir } = await installed(tmp);
    await installHydraMeta(paths);
    const conf = JSON.parse(await Deno.readTextFile(join(confDir, "00-hydra.conflist")));
    const hydra = conf.plugins[0];
    assert.equal(hydra.type, "hydra");
    assert.equal(hydra.daemonExec, true);
    assert.equal(hydra.daemonSocket, paths.socket);
  });
});
