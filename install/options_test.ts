import assert from "node:assert/strict";
import { InstallError } from "./error.ts";
import { parseInstallArgs } from "./options.ts";

Deno.test("defaults: meta mode on the standard host paths, kubeconfig and manifest in hydra.d", () => {
  const o = parseInstallArgs([]);
  assert.equal(o.mode, "meta");
  assert.equal(o.binDir, "/opt/cni/bin");
  assert.equal(o.confDir, "/etc/cni/net.d");
  assert.equal(o.stateDir, "/etc/cni/net.d/hydra.d");
  assert.equal(o.kubeconfig, "/etc/cni/net.d/hydra.d/hydra.kubeconfig");
  assert.equal(o.manifest, "/etc/cni/net.d/hydra.d/install-manifest.json");
  assert.equal(o.confName, "00-hydra.conflist");
  assert.equal(o.tokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  assert.equal(o.once, false);
  assert.equal(o.intervalMs, 5000);
  assert.equal(o.defaultConfTimeoutMs, 300_000);
  // The installer's own port on loopback while it keeps running; no endpoint for one pass.
  assert.deepEqual(o.healthAddr, { transport: "tcp", hostname: "127.0.0.1", port: 9471 });
  assert.equal(o.healthAddrDefaulted, true);
  assert.equal(parseInstallArgs(["--once"]).healthAddr, undefined);
  assert.equal(parseInstallArgs(["--uninstall"]).healthAddr, undefined);
  assert.equal(parseInstallArgs(["--health-addr=off"]).healthAddr, undefined);
  assert.deepEqual([o.logLevel, o.logFormat, o.logFile], ["info", "json", undefined]);
});

Deno.test("--log-level, --log-format and --log-file like every role's", () => {
  const o = parseInstallArgs(["--log-level=debug", "--log-format=text", "--log-file=/l"]);
  assert.deepEqual([o.logLevel, o.logFormat, o.logFile], ["debug", "text", "/l"]);
  assert.equal(parseInstallArgs(["--listen=:1"]).healthAddrDefaulted, false);
});

Deno.test("the state dir and kubeconfig follow --conf-dir unless given", () => {
  const o = parseInstallArgs(["--conf-dir=/x/net.d", "--no-kubeconfig", "--interval=0.5"]);
  assert.equal(o.stateDir, "/x/net.d/hydra.d");
  assert.equal(o.kubeconfig, undefined);
  assert.equal(o.intervalMs, 500);
  const p = parseInstallArgs(["--state-dir=/s", "--kubeconfig=/k/config"]);
  assert.equal(p.manifest, "/s/install-manifest.json");
  assert.equal(p.kubeconfig, "/k/config");
});

Deno.test("bad usage is an InstallError naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--mode=bridge"], /--mode "bridge"/],
    [["--bogus"], /bogus/],
    [["--interval=soon"], /--interval "soon"/],
    [["--default-conf-timeout=-1"], /--default-conf-timeout/],
    [["--conf-name=hydra.conf"], /--conf-name/],
    [["--kubeconfig=/a", "--no-kubeconfig"], /exclude each other/],
    [["--once", "--uninstall"], /exclude each other/],
    [["--health-addr=9471"], /--health-addr/],
    [["--log-level=loud"], /--log-level must be/],
    [["--log-format=xml"], /--log-format must be json or text/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => parseInstallArgs(args), (err: unknown) => {
      assert.ok(err instanceof InstallError, String(err));
      assert.match(err.message, re);
      return true;
    });
  }
});

Deno.test("an unusable --meta-json is kept as the reason to refuse the conf, not a usage error", () => {
  assert.match(parseInstallArgs(["--meta-json=[1]"]).metaExtraError!, /must be a JSON object/);
  assert.match(parseInstallArgs(["--meta-json={"]).metaExtraError!, /is not valid JSON/);
  assert.equal(parseInstallArgs(['--meta-json={"cacheDir":"/c"}']).metaExtraError, undefined);
});

Deno.test("--health-addr takes the daemons' address forms", () => {
  assert.deepEqual(parseInstallArgs(["--health-addr=:9471"]).healthAddr, {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 9471,
  });
  assert.deepEqual(parseInstallArgs(["--health-addr=unix:/run/h.sock"]).healthAddr, {
    transport: "unix",
    path: "/run/h.sock",
  });
});

Deno.test("--node-service-account: the node token's account, node and lifetime", () => {
  const opts = parseInstallArgs([
    "--node-service-account=hydra-system/hydra-node",
    "--node-name=n1",
    "--node-token-ttl=3600",
  ]);
  assert.deepEqual(opts.nodeToken, {
    namespace: "hydra-system",
    name: "hydra-node",
    nodeName: "n1",
    ttlSeconds: 3600,
  });
  assert.equal(parseInstallArgs([]).nodeToken, undefined);
  const bad: [string[], RegExp][] = [
    [["--node-name=n1"], /--node-name needs --node-service-account/],
    [["--node-service-account=a/B_C", "--node-name=n1"], /is not \[NS\/\]NAME/],
    [["--node-service-account=ns/a", "--node-name=n1", "--node-token-ttl=60"], /at least 600/],
    [
      ["--node-service-account=x", "--node-name=n1", "--token-file=/nonexistent/token"],
      /cannot tell the pod's namespace from \/nonexistent\/namespace/,
    ],
  ];
  for (const [args, re] of bad) assert.throws(() => parseInstallArgs(args), re, args.join(" "));
});
