/**
 * `hydra daemon` as an attacker and a crash would try it, against a real
 * kube-apiserver: who may reach its socket (a group-0 user, a user with
 * DAC override), what a caller may make it run (never a conf, plugin path
 * or environment it sends), requests meant to crash it, connections meant
 * to exhaust its memory, and an ADD whose exec'd side gave up while a
 * delegate was still working. Also: the meta-CNI's Kubernetes mode with a
 * damaged network file and with a delegate DEL failing after the record was
 * lost.
 *
 * Needs root, setpriv and perl, and the built peers (etcd, kube-apiserver,
 * reference plugins).
 */

import assert from "node:assert/strict";
import { encodeLine } from "../../daemonclient/protocol.ts";
import { confDigest } from "../../daemonclient/protocol.ts";
import { delay } from "../../pkg/async.ts";
import { links } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { type KubeEnv, startKubeEnv } from "./harness.ts";

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function names(netns: TestNetns): Promise<string[]> {
  return [...(await links(netns)).keys()].filter((n) => n !== "lo").sort();
}

/** One request line as another user (setpriv `privs`), with perl: what came back. */
async function asUser(privs: string[], socket: string, line: string): Promise<string> {
  // A refused peer may find the connection closed before it writes: no SIGPIPE death.
  const script = `use IO::Socket::UNIX;
$SIG{PIPE} = "IGNORE";
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0])
  or do { print "connect: $!\\n"; exit 0 };
print $s "$ARGV[1]\\n";
my $l = <$s>;
print defined $l ? $l : "closed\\n";`;
  const out = await new Deno.Command("setpriv", {
    args: [...privs, "--clear-groups", "perl", "-e", script, socket, line],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim() || new TextDecoder().decode(out.stderr);
}

/** Sends one request line as root and reads one answer line. */
async function ask(socket: string, request: unknown): Promise<Record<string, unknown>> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    let text = "";
    const buf = new Uint8Array(65536);
    while (!text.includes("\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text ? JSON.parse(text.split("\n")[0]) : { closed: true };
  } finally {
    conn.close();
  }
}

function status(path: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    const m = /^(Vm\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) / 1024;
  }
  return out;
}

/** A plugin that sleeps 3 s on ADD, then leaves a marker; DEL removes it. */
async function slowPlugin(env: KubeEnv): Promise<string> {
  const bin = `${env.dir}/slow-bin`;
  await Deno.mkdir(bin, { recursive: true });
  await Deno.writeTextFile(
    `${bin}/slow`,
    `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) sleep 3; touch "${env.dir}/slow-added-$CNI_CONTAINERID"; echo '{"cniVersion":"1.0.0"}' ;;
  DEL) rm -f "${env.dir}/slow-added-$CNI_CONTAINERID" ;;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;
esac
`,
    { mode: 0o755 },
  );
  return bin;
}

Deno.test("hydra daemon: only root is served, only the node's confs run, nothing sent can take it down", async (t) => {
  const env = await startKubeEnv();
  // As kubelet makes a hostPath folder (DirectoryOrCreate): 0755, where any user can look.
  const runDir = await Deno.makeTempDir({ prefix: "hydra-run-" });
  try {
    await Deno.chmod(runDir, 0o755);
    const socket = `${runDir}/daemon.sock`;
    const daemon = await env.startDaemon({ socket });
    const ping = encodeLine({ op: "ping" });
    const pingText = new TextDecoder().decode(ping).trim();

    await t.step("the socket: 0600 in a folder narrowed to 0700", () => {
      assert.equal(Deno.statSync(socket).mode! & 0o777, 0o600);
      assert.equal(Deno.statSync(runDir).mode! & 0o777, 0o700);
    });

    await t.step("a user of group 0 cannot connect", async () => {
      const out = await asUser(["--reuid=65534", "--regid=0"], socket, pingText);
      assert.match(out, /^connect: Permission denied/);
    });

    await t.step("a user who gets past the file modes is refused by who it is", async () => {
      const out = await asUser(
        [
          "--reuid=65534",
          "--regid=65534",
          "--inh-caps=+dac_override",
          "--ambient-caps=+dac_override",
        ],
        socket,
        pingText,
      );
      assert.equal(JSON.parse(out).reason, "Forbidden", out);
      const m = await daemon.metrics();
      assert.equal(metric(m, 'hydra_daemon_connections_dropped_total{reason="peer"}'), 1);
      const log = await Deno.readTextFile(daemon.logPath);
      assert.match(log, /"msg":"connection refused: not an allowed user".*"uid":65534/);
    });

    await t.step("a conf, plugin path or environment sent by a caller is never run", async () => {
      const evil = `${env.dir}/evil-bin`;
      await Deno.mkdir(evil);
      const marker = `${env.dir}/evil-ran`;
      await Deno.writeTextFile(`${evil}/evil`, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
      const pod = await env.podNetns();
      const hostile = {
        cniVersion: "1.0.0",
        name: "evil",
        type: "hydra",
        binDir: evil,
        cacheDir: `${env.dir}/evil-cache`,
        delegates: [{ cniVersion: "1.0.0", name: "e", type: "evil" }],
      };
      // The shape of a request before this version: env and stdin.
      const old = await ask(socket, {
        op: "cni",
        env: {
          CNI_COMMAND: "ADD",
          CNI_CONTAINERID: "evil1",
          CNI_NETNS: pod.path,
          CNI_IFNAME: "eth0",
          CNI_PATH: evil,
        },
        stdin: JSON.stringify(hostile),
      });
      assert.equal(old.status, 400, JSON.stringify(old));
      // Arguments only, naming a conf the node does not have.
      const args = {
        op: "cni",
        command: "ADD",
        containerId: "evil2",
        netns: pod.path,
        ifName: "eth0",
        cniArgs: "",
        plugin: "hydra",
      };
      const unknown = await ask(socket, {
        ...args,
        network: "evil",
        confDigest: await confDigest(hostile),
      });
      assert.equal(unknown.reason, "ConfNotFound", JSON.stringify(unknown));
      // A conf of the node that does not ask for daemonExec is not the daemon's to run.
      const plain = env.metaConf({ name: "plain", clusterNetwork: "cluster" });
      await Deno.writeTextFile(`${env.nodeConfDir}/plain.conf`, JSON.stringify(plain));
      const notAsked = await ask(socket, {
        ...args,
        network: "plain",
        confDigest: await confDigest(plain),
      });
      assert.equal(notAsked.reason, "ConfNotFound", JSON.stringify(notAsked));
      assert.match(String(notAsked.message), /does not ask for daemonExec/);
      // The node's conf, but another one than the caller claims to run.
      const nodeConf = env.metaConf({ clusterNetwork: "cluster", daemonExec: true });
      await Deno.writeTextFile(`${env.nodeConfDir}/hydra.conf`, JSON.stringify(nodeConf));
      const other = await ask(socket, {
        ...args,
        network: "hydra",
        confDigest: await confDigest({ ...nodeConf, binDir: evil }),
      });
      assert.equal(other.reason, "ConfMismatch", JSON.stringify(other));
      // The node itself is no pod.
      const own = await ask(socket, {
        ...args,
        netns: env.node.path,
        network: "hydra",
        confDigest: await confDigest(nodeConf),
      });
      assert.equal(own.status, 400, JSON.stringify(own));
      assert.match(String(own.message), /the daemon's own network namespace/);
      for (const command of ["GC", "STATUS", "VERSION"]) {
        const refused = await ask(socket, {
          ...args,
          command,
          network: "hydra",
          confDigest: await confDigest(nodeConf),
        });
        assert.equal(refused.status, 400, command);
      }
      await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
      assert.deepEqual(await names(pod), []);
    });

    await t.step("requests meant to crash it are answered and it goes on", async () => {
      for (
        const bad of [
          { op: "report" },
          { op: "report", pod: null, reports: [] },
          { op: "report", pod: { namespace: "ns", name: "p" }, reports: [null] },
          { op: "create", path: "/api/v1/namespaces/ns/events", body: null },
          { op: "get", path: 7 },
        ]
      ) {
        const res = await ask(socket, bad);
        assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(res)}`);
      }
      await delay(200);
      assert.equal((await ask(socket, { op: "ping" })).ok, true);
      const log = await Deno.readTextFile(daemon.logPath);
      assert.doesNotMatch(log, /unhandled|uncaught/);
    });

    await t.step("100 connections sending endless lines: dropped, memory bounded", async () => {
      const proc = `/proc/${daemon.process.pid}/status`;
      const before = status(proc).VmRSS;
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      await Promise.all(Array.from({ length: 100 }, async () => {
        const conn = await Deno.connect({ transport: "unix", path: socket });
        try {
          for (let sent = 0; sent < 5 * 1024 * 1024; sent += chunk.length) {
            await conn.write(chunk);
          }
        } catch {
          // dropped by the daemon
        } finally {
          conn.close();
        }
      }));
      const after = status(proc);
      assert.ok(
        after.VmHWM - before < 120,
        `peak RSS ${after.VmHWM.toFixed(0)} MiB, ${before.toFixed(0)} MiB before`,
      );
      const m = await daemon.metrics();
      const dropped = metric(m, 'hydra_daemon_connections_dropped_total{reason="line"}') +
        metric(m, 'hydra_daemon_connections_dropped_total{reason="memory"}');
      assert.ok(dropped >= 100, m);
      assert.equal((await ask(socket, { op: "ping" })).ok, true);
    });

    assert.equal(await daemon.stop(), 0);
  } finally {
    await env.close();
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("daemonExec: an ADD whose exec'd side gave up is cancelled and rolled back before the DEL", async () => {
  const env = await startKubeEnv();
  try {
    const slow = await slowPlugin(env);
    const cluster = env.bridgeNet("cluster");
    await Deno.writeTextFile(
      `${env.confDir}/10-cluster.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "cluster",
        plugins: [
          { ...cluster.conf, cniVersion: undefined, name: undefined },
          { type: "slow" },
        ],
      }),
    );
    const daemon = await env.startDaemon();
    const conf = env.metaConf({
      clusterNetwork: "cluster",
      daemonExec: true,
      daemonSocket: daemon.socket,
      daemonExecTimeout: 1,
      binDir: slow,
    });
    const pod = await env.createPod("slow");
    const netns = await env.podNetns();
    const call = { netns, pod: pod.metadata, containerId: `slow-${netns.name}` };
    const add = await env.cni("ADD", conf, call);
    assert.equal(add.code, 1);
    assert.equal(add.json?.code, 11, add.stdout);
    // The runtime's DEL at once, as it follows a failed ADD (with the default wait).
    const { daemonExecTimeout: _, ...patient } = conf;
    const del = await env.cni("DEL", patient, call);
    assert.equal(del.code, 0, del.stdout);
    // Long after the slow delegate would have finished: nothing of the ADD is left.
    await delay(4_000);
    await assert.rejects(
      Deno.stat(`${env.dir}/slow-added-${call.containerId}`),
      Deno.errors.NotFound,
    );
    assert.deepEqual(await names(netns), []);
    const reservations = [...Deno.readDirSync(`${env.dir}/ipam/cluster`)]
      .map((e) => e.name).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n));
    assert.deepEqual(reservations, []);
    // The meta-CNI the daemon ran logged why its ADD stopped (its conf's logFile).
    const log = await Deno.readTextFile(`${env.dir}/hydra.log`);
    assert.match(log, /cancelled: the caller('s deadline .* passed| closed its connection)/);
    assert.equal(await daemon.stop(), 0);
  } finally {
    await env.close();
  }
});

Deno.test("Kubernetes mode: a damaged network file and a failing DEL without a record", async (t) => {
  const env = await startKubeEnv();
  try {
    await t.step(
      "a truncated file under <cacheDir>/networks/ does not fail the next ADD",
      async () => {
        const net = env.bridgeNet("inline-net");
        const conf = env.metaConf({ delegates: [net.conf] });
        for (const [i, name] of ["first", "second"].entries()) {
          const pod = await env.createPod(`netfile-${name}`);
          const netns = await env.podNetns();
          const call = { netns, pod: pod.metadata };
          const add = await env.cni("ADD", conf, call);
          assert.equal(add.code, 0, add.stdout);
          assert.equal((await env.cni("DEL", conf, call)).code, 0);
          if (i > 0) break;
          for (const f of Deno.readDirSync(`${env.cacheDir}/networks`)) {
            const path = `${env.cacheDir}/networks/${f.name}`;
            await Deno.writeTextFile(path, (await Deno.readTextFile(path)).slice(0, 10));
          }
        }
      },
    );

    await t.step("a re-resolved delegate whose DEL fails fails the DEL", async () => {
      const bin = `${env.dir}/flaky-bin`;
      await Deno.mkdir(bin);
      await Deno.writeTextFile(
        `${bin}/flaky`,
        `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) echo '{"cniVersion":"1.0.0"}' ;;
  DEL) if [ -e "${env.dir}/fail-del" ]; then
         echo '{"cniVersion":"1.0.0","code":77,"msg":"flaky DEL failed"}'; exit 1
       fi ;;
esac
`,
        { mode: 0o755 },
      );
      const cluster = env.bridgeNet("cluster16");
      await Deno.writeTextFile(`${env.confDir}/20-cluster16.conf`, JSON.stringify(cluster.conf));
      await env.nad(env.ns, "flaky", { cniVersion: "1.0.0", type: "flaky" });
      const conf = env.metaConf({ clusterNetwork: "cluster16", binDir: bin });
      const pod = await env.createPod("flaky", { "k8s.v1.cni.cncf.io/networks": "flaky" });
      const netns = await env.podNetns();
      const call = { netns, pod: pod.metadata, containerId: `flaky-${netns.name}` };
      assert.equal((await env.cni("ADD", conf, call)).code, 0);
      await Deno.remove(`${env.cacheDir}/attachments/${call.containerId}-eth0`);
      await Deno.writeTextFile(`${env.dir}/fail-del`, "");
      const del = await env.cni("DEL", conf, call);
      assert.equal(del.code, 1, "the failure is reported");
      assert.match(String(del.json?.msg), /flaky DEL failed/);
      assert.deepEqual(await names(netns), [], "what could be deleted is gone");
      await Deno.remove(`${env.dir}/fail-del`);
      assert.equal((await env.cni("DEL", conf, call)).code, 0, "the next DEL finishes it");
    });
  } finally {
    await env.close();
  }
});
