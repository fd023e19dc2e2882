/**
 * `hydra doctor`: `--conf` catches every mistake users coming from Multus
 * make (each with its key path, and the key a typo misspells), accepts
 * Multus' spellings hydra reads, judges a Multus conf as the installer
 * would; on a bare node every hint is one next step and none sends the user
 * in a circle.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { thinConf } from "../infra/multus_module.ts";
import type { Check } from "../../cmd/doctor_check.ts";

const hydra = fileURLToPath(new URL("../../bin/hydra", import.meta.url));

async function doctor(...args: string[]): Promise<{ code: number; checks: Check[] }> {
  const out = await new Deno.Command(hydra, {
    args: ["doctor", "--json", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return { code: out.code, checks: JSON.parse(text) };
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-doctor-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bridge = (extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.0.0",
  name: "blue",
  type: "bridge",
  bridge: "br-blue",
  ipam: { type: "host-local", ranges: [[{ subnet: "10.9.0.0/24" }]] },
  ...extra,
});

const meta = (extra: Record<string, unknown>) => ({
  cniVersion: "1.0.0",
  name: "hydra",
  plugins: [{ type: "hydra", delegates: [bridge()], ...extra }],
});

Deno.test("doctor --conf: each mistake fails with its key path; Multus' spellings hydra reads pass", async () => {
  const cases: [string, unknown, RegExp | undefined][] = [
    ["isGatway", bridge({ isGatway: true }), /"isGatway" .* did you mean "isGateway"/],
    [
      "rangeStrat",
      bridge({
        ipam: { type: "host-local", ranges: [[{ subnet: "10.9.0.0/24", rangeStrat: "10.9.0.9" }]] },
      }),
      /"ipam\.ranges\[0\]\[0\]\.rangeStrat" .* did you mean "rangeStart"/,
    ],
    ["ipam without type", bridge({ ipam: { subnet: "10.9.0.0/24" } }), /"ipam" has no "type"/],
    [
      "auxiliaryCNIChainName",
      meta({ auxiliaryCNIChainName: "cni-chain-config" }),
      /"plugins\[0\]\.auxiliaryCNIChainName" is not supported: hydra runs no auxiliary chain/,
    ],
    [
      "logOptions",
      meta({ logOptions: { maxAge: 5 } }),
      /"plugins\[0\]\.logOptions" is not supported: hydra does not rotate/,
    ],
    ["daemonExec yes", meta({ daemonExec: "yes" }), /"plugins\[0\]\.daemonExec" must be a boolean/],
    [
      "hydra-pool range_strat",
      bridge({ ipam: { type: "hydra-pool", range: "10.9.0.0/24", range_strat: "10.9.0.10" } }),
      /"ipam\.range_strat" is not a key of a hydra-pool .* did you mean "range_start"/,
    ],
    [
      "hydra-pool addresses",
      bridge({ ipam: { type: "hydra-pool", range: "10.9.0.0/24", addresses: [] } }),
      /"ipam\.addresses" is not supported: .*"ips"/,
    ],
    [
      "hydra-pool from whereabouts",
      bridge({
        ipam: {
          type: "hydra-pool",
          range: "10.9.0.0/24",
          log_level: "debug",
          reconciler_cron_expression: "30 4 * * *",
          kubernetes: { kubeconfig: "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig" },
        },
      }),
      undefined,
    ],
    ["logLevel verbose", meta({ logLevel: "verbose" }), undefined],
    ["cniDir", meta({ cniDir: "/var/lib/cni/multus" }), undefined],
    ["logToStderr", meta({ logToStderr: true, logFile: "/var/log/hydra.log" }), undefined],
  ];
  await withDir(async (dir) => {
    for (const [what, conf, problem] of cases) {
      const path = join(dir, `${what.replaceAll(" ", "-")}.conflist`);
      await Deno.writeTextFile(path, JSON.stringify(conf));
      const { code, checks } = await doctor("--conf", path);
      const failed = checks.filter((c) => c.status === "fail");
      if (problem) {
        assert.equal(code, 1, what);
        assert.equal(failed.length, 1, `${what}: ${JSON.stringify(failed)}`);
        assert.match(failed[0].detail, problem, what);
      } else {
        assert.equal(code, 0, `${what}: ${JSON.stringify(failed)}`);
      }
    }
  });
});

Deno.test("doctor --conf on a folder holding Multus thin's conf: says hydra install unwraps it", async () => {
  await withDir(async (dir) => {
    const master = { ...bridge(), cniVersion: "0.3.1", name: "podnet" };
    await Deno.writeTextFile(join(dir, "10-podnet.conf"), JSON.stringify(master));
    const thin = await thinConf(master);
    await Deno.writeTextFile(join(dir, thin.name), thin.text);
    const { code, checks } = await doctor("--conf", dir);
    assert.equal(code, 0, JSON.stringify(checks));
    const verdict = checks.find((c) => c.name === "other meta-plugin");
    assert.ok(verdict, JSON.stringify(checks));
    assert.match(verdict.detail, /is Multus \(multus-thin\); hydra install will unwrap it/);
    assert.match(verdict.hint!, /docs\/migrating-from-multus\.md/);
  });
});

Deno.test("doctor on a bare node: every hint is one next step, none leads back to another", async () => {
  await withDir(async (dir) => {
    const bin = join(dir, "bin");
    const conf = join(dir, "net.d");
    await Deno.mkdir(bin);
    await Deno.mkdir(conf);
    const bare = await doctor("--bin-dir", bin, "--conf-dir", conf);
    const byName = new Map(bare.checks.map((c) => [c.name, c]));
    for (const c of bare.checks) {
      if (c.status !== "ok") assert.ok(c.hint, `${c.name} has no next step`);
    }
    // The conf dir's step is the default network, never hydra's installer (which waits for it).
    const confDir = byName.get("CNI conf dir")!;
    assert.equal(confDir.status, "warn");
    assert.match(confDir.hint!, /default network/);
    assert.doesNotMatch(confDir.hint!, /hydra install/);
    assert.match(
      byName.get("hydra in CNI bin dir")!.hint!,
      /first give the node its default network/,
    );

    // With a default network, the next step is installing hydra.
    await Deno.writeTextFile(join(conf, "10-podnet.conf"), JSON.stringify(bridge()));
    const next = await doctor("--bin-dir", bin, "--conf-dir", conf);
    const hydraCheck = next.checks.find((c) => c.name === "hydra in CNI bin dir")!;
    assert.match(hydraCheck.hint!, /kubectl apply -f deploy\/hydra-meta\.yaml/);
    assert.equal(next.checks.find((c) => c.name === "CNI conf dir")!.status, "ok");
  });
});
