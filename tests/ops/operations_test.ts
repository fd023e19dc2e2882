/**
 * What an operator sees of every long-running role: one health flag and one
 * port per role, the same in the help, the manifests and docs/operations.md;
 * the log flags; and, from a real process, text logs and the metrics every
 * role has (`process_*`, `hydra_build_info`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROLE_PORTS } from "../../pkg/operation_flags.ts";
import { roleOf } from "./manifest_roles.ts";
import { hydraLauncher, makeNode, removeNode, repoRoot, waitFor } from "../install/helpers.ts";
import { installHelp } from "../../install/options.ts";
import { routeHelp } from "../../route/options.ts";
import { nriServeHelp } from "../../nri/options.ts";
import { draServeHelp } from "../../dra/options.ts";
import { DAEMON_HELP } from "../../daemon/node_main.ts";
import { POLICY_HELP } from "../../policy/options.ts";
import { IPAM_HELP } from "../../ipam_controller/main.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

Deno.test("docs/operations.md lists each role's port as the code has it", async () => {
  const text = await Deno.readTextFile(join(repoRoot, "docs", "operations.md"));
  const rows = [...text.matchAll(/^\| `([a-z-]+)` +\| `hydra [a-z ]+` +\| (\d+) +\|/gm)];
  const documented = Object.fromEntries(rows.map((m) => [m[1], Number(m[2])]));
  assert.deepEqual(documented, ROLE_PORTS);
});

Deno.test("every role's help names --health-addr with its port and the log flags", () => {
  const helps: [keyof typeof ROLE_PORTS, string][] = [
    ["install", installHelp()],
    ["route", routeHelp()],
    ["nri", nriServeHelp()],
    ["dra", draServeHelp()],
    ["daemon", DAEMON_HELP],
    ["policy", POLICY_HELP],
    ["ipam-controller", IPAM_HELP],
  ];
  for (const [role, help] of helps) {
    assert.match(
      help,
      new RegExp(`--health-addr ADDR[^]*default: 127\\.0\\.0\\.1:${ROLE_PORTS[role]}`),
      role,
    );
    for (const flag of ["--log-level", "--log-format", "--log-file"]) {
      assert.ok(help.includes(flag), `${role} ${flag}`);
    }
    assert.doesNotMatch(help, /^\s+--listen ADDR/m, role);
  }
});

Deno.test("every container of every manifest serves on its role's port with --health-addr", async () => {
  const files = [...Deno.readDirSync(join(repoRoot, "deploy"))].map((e) => e.name)
    .filter((n) => n.endsWith(".yaml")).sort();
  assert.ok(files.length >= 4, files.join(" "));
  let containers = 0;
  for (const file of files) {
    const docs = parseAllDocuments(await Deno.readTextFile(join(repoRoot, "deploy", file)))
      .map((d) => d.toJSON() as Obj).filter((d) => d?.spec?.template?.spec?.containers);
    for (const c of docs.flatMap((d) => d.spec.template.spec.containers as Obj[])) {
      const where = `${file}/${c.name}`;
      const port = ROLE_PORTS[roleOf(c)];
      const args: string[] = c.args ?? [];
      assert.ok(!args.some((a) => a.startsWith("--listen")), `${where}: --listen`);
      assert.equal(
        args.find((a) => a.startsWith("--health-addr="))?.split(":").at(-1),
        String(port),
        where,
      );
      assert.equal(c.ports?.[0]?.containerPort, port, where);
      assert.equal(c.livenessProbe?.httpGet?.port, port, where);
      assert.equal(c.readinessProbe?.httpGet?.port, port, where);
      containers++;
    }
  }
  assert.ok(containers >= 7, `${containers} containers`);
});

Deno.test("a running role: text log lines at the asked level, process and build metrics", async () => {
  const node = await makeNode();
  const child = new Deno.Command(hydraLauncher, {
    args: [
      "install",
      ...node.flags,
      "--mode=nri",
      "--no-kubeconfig",
      "--interval=0.1",
      "--health-addr=127.0.0.1:0",
      "--log-format=text",
      "--log-level=debug",
    ],
    env: { HYDRA_REVISION: "0123abcd" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  try {
    await waitFor(() => / INFO {2}installed /.test(stderr), "installed");
    const address = /serving \/healthz, \/readyz and \/metrics .*address=(\S+)/.exec(stderr)?.[1];
    assert.ok(address, stderr);
    for (const line of stderr.trim().split("\n")) {
      assert.match(line, /^\d{4}-\d\d-\d\dT\S+Z (DEBUG|INFO |WARN |ERROR) \S/, line);
    }
    assert.match(stderr, / component=install/);
    const metrics = await (await fetch(`http://${address}/metrics`)).text();
    assert.match(metrics, /^hydra_build_info\{version="[^"]+",revision="0123abcd"\} 1$/m);
    for (
      const name of [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
      ]
    ) {
      const v = Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
      assert.ok(v > 0, `${name}: ${v}`);
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
    await removeNode(node);
  }
});
