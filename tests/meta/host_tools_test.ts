/**
 * Host tools inside hydra's image: the meta-CNI run the way the node daemon
 * (`daemonExec`) and the NRI plugin run it, inside a world laid out as the
 * image (no iptables, no nft; the node's root at /host; see
 * tests/helpers/image_world.ts), on a test "node" namespace.
 *
 * - hydra's own masquerade (`ipMasq` of hydra-bridge) is programmed through
 *   libnftables: a pod reaches an address outside that has no route back
 *   to the pod network, and DEL removes the rules;
 * - the reference portmap and firewall plugins need the node's iptables:
 *   without `chrootDir` they fail (and nothing is left attached); with
 *   `"chrootDir": "/host"` they run chrooted into the node's root, the
 *   host port forwards to the pod, and DEL removes their rules.
 *
 * Needs root, the reference plugins (built peers), iptables and nft on the
 * machine (the node's tools, used through /host and to observe).
 */

import assert from "node:assert/strict";
import { createImageWorld, HOST_ROOT, type ImageWorld } from "../helpers/image_world.ts";
import { createNetns, deleteNetns, run, type TestNetns, uniqueName } from "../helpers/netns.ts";
import { referencePluginDir } from "../infra/peers.ts";
import { randomSubnet24, reaches } from "../plugins/helpers.ts";

interface Node {
  world: ImageWorld;
  dir: string;
  node: TestNetns;
  pod: TestNetns;
  /** A second pod namespace. */
  spare: TestNetns;
  outside: TestNetns;
  /** The node's address toward `outside`, and outside's own. */
  nodeIp: string;
  outsideIp: string;
  refDir: string;
}

/** A node with a pod namespace and an outside namespace that knows no route to pods. */
async function withNode(fn: (n: Node) => Promise<void>): Promise<void> {
  const refDir = referencePluginDir();
  const dir = await Deno.makeTempDir({ prefix: "hydra-hosttools-" });
  const made: TestNetns[] = [];
  let world: ImageWorld | undefined;
  try {
    world = await createImageWorld([dir, refDir]);
    const node = await createNetns("htn");
    made.push(node);
    const pod = await createNetns("htp");
    made.push(pod);
    const spare = await createNetns("hts");
    made.push(spare);
    const outside = await createNetns("hto");
    made.push(outside);
    const [a] = crypto.getRandomValues(new Uint8Array(1));
    const net = `198.18.${a}`;
    const [nodeIp, outsideIp] = [`${net}.1`, `${net}.2`];
    const veth = uniqueName("htv");
    await run("ip", "-n", node.name, "link", "add", veth, "type", "veth", "peer", "up0");
    await run("ip", "-n", node.name, "link", "set", "up0", "netns", outside.name);
    await run("ip", "-n", node.name, "addr", "add", `${nodeIp}/24`, "dev", veth);
    await run("ip", "-n", node.name, "link", "set", veth, "up");
    await run("ip", "-n", outside.name, "addr", "add", `${outsideIp}/24`, "dev", "up0");
    await run("ip", "-n", outside.name, "link", "set", "up0", "up");
    await fn({ world, dir, node, pod, spare, outside, nodeIp, outsideIp, refDir });
  } finally {
    for (const ns of made.reverse()) await deleteNetns(ns);
    await world?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The meta-CNI exec'd inside the image world, in the node namespace, as a runtime execs it. */
async function cni(
  n: Node,
  command: "ADD" | "DEL",
  conf: unknown,
  containerId: string,
  pod = n.pod,
) {
  const out = await n.world.run([n.world.hydra], {
    netns: n.node.name,
    stdin: JSON.stringify(conf),
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: ["/opt/hydra/bin", n.refDir].join(":"),
    },
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = out.stdout.trim() ? JSON.parse(out.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...out, json };
}

/** A hydra-bridge network that is the pod's gateway. */
function bridgeNet(n: Node, subnet: string, extra: Record<string, unknown> = {}) {
  return {
    type: "hydra-bridge",
    bridge: uniqueName("htb"),
    isGateway: true,
    isDefaultGateway: true,
    ipam: { type: "hydra-ipam", subnet, dataDir: `${n.dir}/ipam` },
    ...extra,
  };
}

function metaConf(n: Node, delegate: unknown, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.1.0",
    name: "hydra",
    type: "hydra",
    cacheDir: `${n.dir}/cache`,
    delegates: [delegate],
    ...extra,
  };
}

/** The lines of `nft list table inet <table>` in `ns` (none when the table is not there). */
async function nftLines(ns: TestNetns, table: string): Promise<string[]> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns.name, "nft", "list", "table", "inet", table],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim());
}

function podIp(result: Record<string, unknown> | undefined): string {
  const ips = (result?.ips ?? []) as { address: string }[];
  assert.ok(ips.length > 0, `no address in ${JSON.stringify(result)}`);
  return ips[0].address.split("/")[0];
}

Deno.test("image world: the image has no iptables or nft, the node's root does", async () => {
  await withNode(async (n) => {
    const script = "for t in iptables nft; do command -v $t || echo no-$t; done; " +
      `[ -e ${HOST_ROOT}/usr/sbin/iptables ] || [ -L ${HOST_ROOT}/usr/sbin/iptables ] && echo host-iptables`;
    const out = await n.world.run(["/bin/sh", "-c", script]);
    assert.deepEqual(out.stdout.trim().split("\n"), ["no-iptables", "no-nft", "host-iptables"]);
  });
});

Deno.test("image world: hydra-bridge's ipMasq masquerades through libnftables, DEL removes it", async () => {
  await withNode(async (n) => {
    const conf = metaConf(n, {
      cniVersion: "1.1.0",
      name: "hmasq",
      ...bridgeNet(n, randomSubnet24(), { ipMasq: true }),
    });
    const id = `masq-${uniqueName("c")}`;
    const add = await cni(n, "ADD", conf, id);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const ip = podIp(add.json);
    const rules = (await nftLines(n.node, "hydra_masquerade")).filter((l) => l.includes(ip));
    assert.equal(rules.length, 1, "one masquerade rule for the pod's address");
    assert.match(rules[0], /masquerade/);
    // outside has no route to the pod network: only a masqueraded packet gets an answer.
    assert.ok(await reaches(n.pod, n.outsideIp), "the pod reaches outside through masquerade");
    const del = await cni(n, "DEL", conf, id);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(
      (await nftLines(n.node, "hydra_masquerade")).filter((l) => l.includes(ip)),
      [],
    );
  });
});

/** A TCP server in `ns` answering "hello" on `port`; returns a stop function. */
async function helloServer(ns: TestNetns, port: number): Promise<() => Promise<void>> {
  const script = [
    "import socket",
    "s = socket.socket()",
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
    `s.bind(("0.0.0.0", ${port}))`,
    "s.listen(4)",
    "print('ready', flush=True)",
    "while True:",
    "    c, _ = s.accept()",
    "    c.sendall(b'hello')",
    "    c.close()",
  ].join("\n");
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns.name, "python3", "-c", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value ?? new Uint8Array()), /ready/);
  return async () => {
    child.kill("SIGKILL");
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
  };
}

/** What a TCP client in `ns` reads from ip:port ("" when it cannot connect). */
async function fetchHello(ns: TestNetns, ip: string, port: number): Promise<string> {
  const script = [
    "import socket",
    "try:",
    `    c = socket.create_connection(("${ip}", ${port}), timeout=3)`,
    "    print(c.recv(16).decode())",
    "except OSError:",
    "    print('')",
  ].join("\n");
  return (await ns.exec("python3", "-c", script)).trim();
}

Deno.test("image world: reference portmap and firewall need the node's iptables: chrootDir runs them on it", async () => {
  await withNode(async (n) => {
    const hostPort = 20000 + (crypto.getRandomValues(new Uint16Array(1))[0] % 20000);
    const list = {
      cniVersion: "1.1.0",
      name: "hports",
      plugins: [
        bridgeNet(n, randomSubnet24()),
        { type: "portmap", capabilities: { portMappings: true } },
        { type: "firewall" },
      ],
    };
    const mappings = { portMappings: [{ hostPort, containerPort: 8080, protocol: "tcp" }] };
    const base = { capabilities: { portMappings: true }, runtimeConfig: mappings };

    // Without chrootDir the plugins look for iptables in the image, find none, and fail.
    const refused = await cni(
      n,
      "ADD",
      metaConf(n, list, base),
      `ports-${uniqueName("c")}`,
      n.spare,
    );
    assert.notEqual(refused.code, 0, "ADD without chrootDir succeeded");
    assert.match(String(refused.json?.msg), /iptables/);

    const id = `ports-${uniqueName("c")}`;

    const conf = metaConf(n, list, { ...base, chrootDir: HOST_ROOT });
    const add = await cni(n, "ADD", conf, id);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const ip = podIp(add.json);
    const stop = await helloServer(n.pod, 8080);
    try {
      assert.equal(await fetchHello(n.outside, n.nodeIp, hostPort), "hello", "host port forwards");
    } finally {
      await stop();
    }
    const forward = await run("ip", "netns", "exec", n.node.name, "iptables", "-S", "CNI-FORWARD");
    assert.match(forward, new RegExp(`${ip.replaceAll(".", "\\.")}`), "firewall let the pod in");

    const del = await cni(n, "DEL", conf, id);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    const nat = await run("ip", "netns", "exec", n.node.name, "iptables", "-t", "nat", "-S");
    assert.doesNotMatch(nat, new RegExp(`--dport ${hostPort}\\b`), "portmap rules removed");
    const after = await run("ip", "netns", "exec", n.node.name, "iptables", "-S");
    assert.doesNotMatch(after, new RegExp(ip.replaceAll(".", "\\.")), "firewall rules removed");
  });
});
