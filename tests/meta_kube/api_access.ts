/**
 * Reaching the test API server from inside a "node" network namespace, so
 * the meta-CNI (and Multus, in the benchmark) run there exactly as on a
 * node, creating their bridges and veths there rather than on the host.
 *
 * The API server listens on every address of the host; a veth pair joins
 * the node namespace to the host, and inside the node namespace connections
 * to 10.96.0.1 (an address the serving certificate names) are DNAT'ed to the
 * host end. Kernel forwarding only: no userspace relay adding latency.
 * Processes in the node namespace use the kubeconfig with server
 * `https://10.96.0.1:<port>`; those on the host keep 127.0.0.1.
 *
 * @module
 */

import { parse } from "yaml";
import { run, uniqueName } from "../helpers/netns.ts";

/** The address the node namespace dials; in the serving certificate. */
export const NODE_API_ADDRESS = "10.96.0.1";

/** Extra kube-apiserver flags the control plane needs for this (listen on every address). */
export const API_ANYWHERE_ARGS = ["--bind-address=0.0.0.0"];

/** A kubeconfig (YAML or JSON) as JSON, optionally pointing at another server. */
export async function jsonKubeconfig(path: string, out: string, server?: string): Promise<string> {
  const doc = parse(await Deno.readTextFile(path)) as {
    clusters: { cluster: { server: string } }[];
  };
  if (server) { for (const c of doc.clusters) c.cluster.server = server; }
  await Deno.writeTextFile(out, JSON.stringify(doc), { mode: 0o600 });
  return out;
}

/**
 * Wires the node namespace `netns` (a name under /var/run/netns) to the API
 * server at `server` (https://127.0.0.1:PORT). Returns the server URL to use
 * inside it. The veth pair goes away with the namespace.
 */
export async function apiIntoNetns(netns: string, server: string): Promise<string> {
  const port = new URL(server).port;
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  const base = `169.254.${1 + (a % 250)}.${(b % 63) * 4}`;
  const [o1, o2, o3, o4] = base.split(".").map(Number);
  const host = `${o1}.${o2}.${o3}.${o4 + 1}`;
  const inner = `${o1}.${o2}.${o3}.${o4 + 2}`;
  const hostEnd = uniqueName("hka");
  const innerEnd = uniqueName("hkb");
  await run("ip", "link", "add", hostEnd, "type", "veth", "peer", "name", innerEnd);
  try {
    await run("ip", "link", "set", innerEnd, "netns", netns);
    await run("ip", "addr", "add", `${host}/30`, "dev", hostEnd);
    await run("ip", "link", "set", hostEnd, "up");
    await run("ip", "-n", netns, "addr", "add", `${inner}/30`, "dev", innerEnd);
    await run("ip", "-n", netns, "link", "set", innerEnd, "up");
    await run("ip", "-n", netns, "route", "add", `${NODE_API_ADDRESS}/32`, "dev", innerEnd);
    await run(
      "ip",
      "netns",
      "exec",
      netns,
      "iptables",
      "-t",
      "nat",
      "-A",
      "OUTPUT",
      "-d",
      `${NODE_API_ADDRESS}/32`,
      "-p",
      "tcp",
      "--dport",
      port,
      "-j",
      "DNAT",
      "--to-destination",
      `${host}:${port}`,
    );
  } catch (err) {
    await run("ip", "link", "del", hostEnd).catch(() => {});
    throw err;
  }
  return `https://${NODE_API_ADDRESS}:${port}`;
}
