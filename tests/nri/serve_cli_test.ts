/**
 * `hydra nri serve`'s command line: help, bad usage, and the arguments the
 * DaemonSet in deploy/hydra-nri.yaml passes.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { repoRoot } from "../infra/peers.ts";
import { parseNriServeArgs } from "../../nri/options.ts";

async function hydra(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(join(repoRoot, "bin", "hydra"), {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("nri serve: command line help and bad usage", async () => {
  const help = await hydra("nri", "serve", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--on-failure fail\|log/);
  assert.match(help.stdout, /default: 127\.0\.0\.1:9470/);
  assert.match(help.stdout, /--in-cluster/);
  for (
    const [args, why] of [
      [["--on-failure=maybe"], /--on-failure must be fail or log/],
      [["--plugin-index=7"], /two digits/],
      [["--conf-dir=relative"], /absolute path/],
      [["--health-addr=nowhere"], /--health-addr/],
      [["--bogus"], /Unknown option/],
      [["--kubeconfig=/k", "--in-cluster"], /exclude each other/],
      [["--kubeconfig=k.conf"], /absolute path/],
      [["--default-network=base"], /needs Kubernetes mode/],
      [["--hotplug=on"], /--hotplug needs Kubernetes mode/],
      [["--hotplug=maybe", "--in-cluster"], /--hotplug must be on or off/],
    ] as [string[], RegExp][]
  ) {
    const out = await hydra("nri", "serve", ...args);
    assert.equal(out.code, 2, args.join(" "));
    assert.match(out.stderr, why);
  }
  const sub = await hydra("nri", "bogus");
  assert.equal(sub.code, 2);
  assert.match(sub.stderr, /unknown subcommand "bogus"/);
  assert.match((await hydra("--help")).stdout, /nri +attach pods' extra networks/);
});

Deno.test("nri serve: the DaemonSet's nri container passes arguments it accepts", () => {
  const text = Deno.readTextFileSync(join(repoRoot, "deploy", "hydra-nri.yaml"));
  // deno-lint-ignore no-explicit-any
  const docs = parseAllDocuments(text).map((d) => d.toJSON() as Record<string, any>);
  const ds = docs.find((d) => d?.kind === "DaemonSet")!;
  // deno-lint-ignore no-explicit-any
  const nri = ds.spec.template.spec.containers.find((c: any) => c.name === "nri");
  assert.deepEqual(nri.args.slice(0, 2), ["nri", "serve"]);
  const opts = parseNriServeArgs(nri.args.slice(2));
  assert.equal(opts.socketPath, "/var/run/nri/nri.sock");
  assert.deepEqual(opts.healthAddr, {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: nri.livenessProbe.httpGet.port,
  });
  assert.equal(nri.readinessProbe.httpGet.path, "/readyz");
  // deno-lint-ignore no-explicit-any
  const mounts: string[] = nri.volumeMounts.map((m: any) => m.mountPath);
  assert.ok(mounts.includes("/var/run/nri"), "the runtime's NRI socket");
  assert.ok(opts.cacheDir.startsWith("/var/lib/cni/") && mounts.includes("/var/lib/cni"));
  assert.ok(opts.cniBinDirs.every((d) => mounts.includes(d)), "plugin folders mounted");
  // In a cluster the plugin works in Kubernetes mode, and its conf dir is there to read.
  assert.equal(opts.inCluster, true);
  assert.ok(mounts.includes(opts.confDir), `conf dir ${opts.confDir} mounted`);
});

Deno.test("nri serve: namespace isolation as the meta-CNI's (own namespace and global ones)", () => {
  assert.deepEqual(parseNriServeArgs([]).namespaces, {
    namespaceIsolation: false,
    globalNamespaces: ["default"],
  });
  assert.deepEqual(
    parseNriServeArgs(["--namespace-isolation", "--global-namespaces=shared, infra"]).namespaces,
    { namespaceIsolation: true, globalNamespaces: ["shared", "infra"] },
  );
  assert.throws(
    () => parseNriServeArgs(["--global-namespaces=shared"]),
    /--global-namespaces needs --namespace-isolation/,
  );
});

Deno.test("nri serve: --chroot-dir names the node's root for exec'd delegates; absolute only", () => {
  assert.equal(parseNriServeArgs(["--chroot-dir", "/host"]).chrootDir, "/host");
  assert.equal(parseNriServeArgs([]).chrootDir, undefined);
  assert.throws(() => parseNriServeArgs(["--chroot-dir", "host"]), /absolute path/);
});
