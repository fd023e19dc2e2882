/**
 * `hydra doctor`: checks a node's prerequisites for each role and says what
 * is missing and how to fix it. Kernel support is tested for real, inside a
 * throwaway network namespace, never on the host's own links.
 *
 * @module
 */

import { parseFlags } from "../pkg/flags.ts";
import { basename, join } from "node:path";
import { checkConfPath } from "./doctor_conf.ts";
import { multusCheck } from "./doctor_multus.ts";
import {
  addLink,
  closeHandle,
  createNamedNetns,
  deleteNamedNetns,
  type LinkSpec,
  openHandle,
  sysctlRead,
} from "../netlink/mod.ts";

import type { Check } from "./doctor_check.ts";

export type { Check };

const HELP = `Usage: hydra doctor [options]
       hydra doctor --conf FILE|DIR [--json]

Checks this node's prerequisites for hydra's roles and says what is missing,
each with one next step. With --conf, checks network confs instead: a
.conf/.conflist/.json file, or every one in a folder (a NAD's config saved to
a file too), against what hydra reads: unknown keys (with the key they most
likely misspell), keys of the wrong type, values out of range, an ipam block
without a type, Multus spellings hydra does not support; another meta-plugin
(Multus) and what "hydra install" would do with it.

Options:
  --bin-dir DIR      CNI bin dir to inspect (default /opt/cni/bin)
  --conf-dir DIR     CNI conf dir to inspect (default /etc/cni/net.d)
  --nri-socket PATH  containerd's NRI socket (default /var/run/nri/nri.sock)
  --conf FILE|DIR    check these network confs (and nothing else)
  --kubeconfig PATH  API access for the address-pool usage (default: the
                     installer's kubeconfig, else the in-cluster account)
  --json             print the checks as JSON
  -h, --help         this help

Exit status: 0 when nothing fails (warnings allowed), 1 otherwise.`;

async function exists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch {
    return undefined;
  }
}

function linkKindChecks(): Check[] {
  const name = `hydra-doctor-${crypto.randomUUID().slice(0, 8)}`;
  let path: string;
  try {
    path = createNamedNetns(name);
  } catch (err) {
    return [{
      name: "network namespaces",
      status: "fail",
      detail: `cannot create a network namespace: ${(err as Error).message}`,
      hint: "run as root on a kernel with CONFIG_NET_NS",
    }];
  }
  const checks: Check[] = [{ name: "network namespaces", status: "ok", detail: "can create" }];
  const h = openHandle({ netnsPath: path });
  try {
    const kinds: [string, LinkSpec, boolean][] = [
      ["veth", { kind: "veth", name: "d-veth0", peer: { name: "d-veth1" } }, true],
      ["bridge", { kind: "bridge", name: "d-br0" }, true],
      ["macvlan", { kind: "macvlan", name: "d-mv0", parent: "d-veth0", mode: "bridge" }, true],
      ["vxlan", { kind: "vxlan", name: "d-vx0", vni: 42, port: 4789, learning: false }, true],
      ["dummy", { kind: "dummy", name: "d-dummy0" }, false],
      ["vlan", { kind: "vlan", name: "d-vlan0", parent: "d-veth0", vlanId: 7 }, false],
      ["ipvlan", { kind: "ipvlan", name: "d-ipvl0", parent: "d-veth0", mode: "l2" }, false],
    ];
    for (const [kind, spec, required] of kinds) {
      try {
        addLink(h, spec);
        checks.push({ name: `link kind ${kind}`, status: "ok", detail: "supported" });
      } catch (err) {
        checks.push({
          name: `link kind ${kind}`,
          status: required ? "fail" : "warn",
          detail: `not supported: ${(err as Error).message}`,
          hint: `load the kernel module (modprobe ${kind === "vlan" ? "8021q" : kind})${
            required ? "" : "; only configs using it are affected"
          }`,
        });
      }
    }
  } finally {
    closeHandle(h);
    deleteNamedNetns(name);
  }
  return checks;
}

async function binDirChecks(binDir: string, hasDefaultConf: boolean): Promise<Check[]> {
  const info = await exists(`${binDir}/hydra`);
  if (!info) {
    return [{
      name: "hydra in CNI bin dir",
      status: "warn",
      detail: `${binDir}/hydra not found`,
      hint: hasDefaultConf
        ? "install hydra: kubectl apply -f deploy/hydra-meta.yaml (its installer runs " +
          "`hydra install` on every node)"
        : 'first give the node its default network (see "CNI conf dir"): hydra\'s installer ' +
          "waits for that conf before it installs anything",
    }];
  }
  const { builtinNames } = await import("../engine/builtins.ts");
  const missing: string[] = [];
  for (const name of builtinNames().filter((n) => n !== "hydra")) {
    if (!(await exists(`${binDir}/${name}`))) missing.push(name);
  }
  return [
    { name: "hydra in CNI bin dir", status: "ok", detail: `${binDir}/hydra` },
    missing.length
      ? {
        name: "role symlinks",
        status: "warn",
        detail: `missing: ${missing.join(", ")}`,
        hint: "restart the installer pod on this node (or run `hydra install --once` as root)",
      }
      : { name: "role symlinks", status: "ok", detail: "all present" },
  ];
}

/** The conf files of `confDir` the runtime considers, sorted; undefined when the folder is missing. */
async function confNames(confDir: string): Promise<string[] | undefined> {
  try {
    return (await Array.fromAsync(Deno.readDir(confDir)))
      .filter((e) => !e.isDirectory && /\.(conf|conflist|json)$/.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch {
    return undefined;
  }
}

const DEFAULT_NETWORK_HINT = "install the cluster's default network (its DaemonSet writes a conf " +
  "here), or write one by hand; hydra then wraps it (docs/meta-cni.md)";

async function confDirChecks(confDir: string, names: string[] | undefined): Promise<Check[]> {
  if (names === undefined) {
    return [{
      name: "CNI conf dir",
      status: "warn",
      detail: `${confDir} does not exist`,
      hint: DEFAULT_NETWORK_HINT,
    }];
  }
  if (names.length === 0) {
    return [{
      name: "CNI conf dir",
      status: "warn",
      detail: `${confDir} holds no network config`,
      hint: DEFAULT_NETWORK_HINT,
    }];
  }
  const first = names[0];
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(await Deno.readTextFile(join(confDir, first)));
  } catch (err) {
    return [{
      name: "CNI conf dir",
      status: "fail",
      detail: `${confDir}/${first} is not valid JSON: ${(err as Error).message}`,
      hint: `the runtime uses the first file by name: fix ${first} or move it out of ${confDir}`,
    }];
  }
  const plugins = conf.plugins as Record<string, unknown>[] | undefined;
  const type = String(conf.type ?? plugins?.[0]?.type ?? "unknown");
  const checks: Check[] = [{
    name: "CNI conf dir",
    status: "ok",
    detail: `runtime uses ${first} (type ${type})${
      type === "hydra" ? ": hydra is the meta-CNI" : ""
    }`,
  }];
  const multus = await multusCheck(confDir, names);
  if (multus) checks.push(multus);
  return checks;
}

/** True when the folder holds a conf other than hydra's own. */
function hasDefault(names: string[] | undefined): boolean {
  return (names ?? []).some((n) => basename(n) !== "00-hydra.conflist");
}

/** What hydra's masquerading (`ipMasq`) will use here, and whether it can. */
async function masqueradeCheck(): Promise<Check> {
  const name = "masquerade (ipMasq)";
  try {
    const out = await new Deno.Command("iptables", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    if (out.success) return { name, status: "ok", detail: "iptables found: ipMasq uses it" };
  } catch { /* not installed: nftables through libnftables */ }
  try {
    const { nftSymbols } = await import("../nft/libnftables.ts");
    nftSymbols();
    return {
      name,
      status: "ok",
      detail: "no iptables: ipMasq programs nftables through libnftables",
    };
  } catch (err) {
    return {
      name,
      status: "warn",
      detail: `neither iptables nor libnftables: ${(err as Error).message}`,
      hint: "install libnftables1 (Debian, Ubuntu) or your distribution's libnftables; " +
        "only networks with ipMasq need it",
    };
  }
}

/** Runs every check. */
export async function runChecks(opts: {
  binDir: string;
  confDir: string;
  nriSocket: string;
  kubeconfig?: string;
}): Promise<Check[]> {
  const checks: Check[] = [];
  const root = Deno.uid() === 0;
  checks.push(
    root ? { name: "privileges", status: "ok", detail: "running as root" } : {
      name: "privileges",
      status: "fail",
      detail: "not root",
      hint: "run hydra doctor as root: CNI plugins and the node daemons need CAP_NET_ADMIN " +
        "and CAP_SYS_ADMIN, and the kernel checks need them too",
    },
  );
  if (root) checks.push(...linkKindChecks());
  try {
    const fwd = sysctlRead(undefined, "net.ipv4.ip_forward").trim();
    checks.push({
      name: "IPv4 forwarding",
      status: fwd === "1" ? "ok" : "warn",
      detail: fwd === "1" ? "on" : "off",
      hint: fwd === "1"
        ? undefined
        : "nothing to do: isGateway bridges and the router turn it on when they need it",
    });
  } catch (err) {
    checks.push({ name: "IPv4 forwarding", status: "warn", detail: (err as Error).message });
  }
  const names = await confNames(opts.confDir);
  checks.push(...await binDirChecks(opts.binDir, hasDefault(names)));
  checks.push(...await confDirChecks(opts.confDir, names));
  checks.push(await masqueradeCheck());
  const nri = await exists(opts.nriSocket);
  checks.push(
    nri?.isSocket ? { name: "NRI socket", status: "ok", detail: opts.nriSocket } : {
      name: "NRI socket",
      status: "warn",
      detail: `${opts.nriSocket} not found (needed by \`hydra nri serve\` only)`,
      hint: 'enable NRI in containerd (plugins."io.containerd.nri.v1.nri" disable = false)',
    },
  );
  checks.push(...await (await import("./doctor_pools.ts")).poolChecks(opts.kubeconfig));
  return checks;
}

/** Runs `hydra doctor`. */
export async function runDoctor(args: string[]): Promise<number> {
  let values;
  try {
    values = parseFlags(args, {
      "bin-dir": { type: "string", default: "/opt/cni/bin" },
      "conf-dir": { type: "string", default: "/etc/cni/net.d" },
      "nri-socket": { type: "string", default: "/var/run/nri/nri.sock" },
      conf: { type: "string" },
      kubeconfig: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    });
  } catch (err) {
    console.error(`hydra doctor: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const checks = values.conf !== undefined ? await checkConfPath(values.conf) : await runChecks({
    binDir: values["bin-dir"],
    confDir: values["conf-dir"],
    nriSocket: values["nri-socket"],
    kubeconfig: values.kubeconfig,
  });
  if (values.json) {
    console.log(JSON.stringify(checks, null, 2));
  } else {
    const width = Math.max(...checks.map((c) => c.name.length));
    for (const c of checks) {
      const mark = c.status === "ok" ? "ok  " : c.status === "warn" ? "warn" : "FAIL";
      console.log(`${mark}  ${c.name.padEnd(width)}  ${c.detail}`);
      if (c.hint && c.status !== "ok") console.log(`      ${"".padEnd(width)}  → ${c.hint}`);
    }
  }
  return checks.some((c) => c.status === "fail") ? 1 : 0;
}
