/**
 * `hydra doctor`: checks a node's prerequisites for each role and says what
 * is missing and how to fix it. Kernel support is tested for real, inside a
 * throwaway network namespace, never on the host's own links.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  addLink,
  closeHandle,
  createNamedNetns,
  deleteNamedNetns,
  type LinkSpec,
  openHandle,
  sysctlRead,
} from "../netlink/mod.ts";

/** The outcome of one check. */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  hint?: string;
}

const HELP = `Usage: hydra doctor [options]

Checks this node's prerequisites for hydra's roles and says what is missing.

Options:
  --bin-dir DIR      CNI bin dir to inspect (default /opt/cni/bin)
  --conf-dir DIR     CNI conf dir to inspect (default /etc/cni/net.d)
  --nri-socket PATH  containerd's NRI socket (default /var/run/nri/nri.sock)
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

async function binDirChecks(binDir: string): Promise<Check[]> {
  const info = await exists(`${binDir}/hydra`);
  if (!info) {
    return [{
      name: "hydra in CNI bin dir",
      status: "warn",
      detail: `${binDir}/hydra not found`,
      hint: "run `hydra install` (or apply deploy/ with kubectl)",
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
        hint: "re-run `hydra install`",
      }
      : { name: "role symlinks", status: "ok", detail: "all present" },
  ];
}

async function confDirCheck(confDir: string): Promise<Check> {
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(confDir)))
      .filter((e) => /\.(conf|conflist|json)$/.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch {
    return {
      name: "CNI conf dir",
      status: "warn",
      detail: `${confDir} does not exist`,
      hint: "a default CNI (or `hydra install --mode meta`) writes it",
    };
  }
  if (names.length === 0) {
    return { name: "CNI conf dir", status: "warn", detail: `${confDir} holds no network config` };
  }
  const first = names[0];
  let type = "unknown";
  try {
    const conf = JSON.parse(await Deno.readTextFile(`${confDir}/${first}`));
    type = conf.type ?? conf.plugins?.[0]?.type ?? "unknown";
  } catch (err) {
    return {
      name: "CNI conf dir",
      status: "fail",
      detail: `${confDir}/${first} is not valid JSON: ${(err as Error).message}`,
      hint: "the runtime uses the first file: fix or remove it",
    };
  }
  return {
    name: "CNI conf dir",
    status: "ok",
    detail: `runtime uses ${first} (type ${type})${
      type === "hydra" ? ": hydra is the meta-CNI" : ""
    }`,
  };
}

async function commandCheck(cmd: string, purpose: string): Promise<Check> {
  try {
    const out = await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    if (out.success) return { name: cmd, status: "ok", detail: `found (${purpose})` };
  } catch { /* not installed */ }
  return { name: cmd, status: "warn", detail: `not found (${purpose})`, hint: `install ${cmd}` };
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
      hint: "CNI plugins and the node daemons need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)",
    },
  );
  if (root) checks.push(...linkKindChecks());
  try {
    const fwd = sysctlRead(undefined, "net.ipv4.ip_forward").trim();
    checks.push({
      name: "IPv4 forwarding",
      status: fwd === "1" ? "ok" : "warn",
      detail: fwd === "1" ? "on" : "off",
      hint: fwd === "1" ? undefined : "isGateway bridges and the router turn it on when needed",
    });
  } catch (err) {
    checks.push({ name: "IPv4 forwarding", status: "warn", detail: (err as Error).message });
  }
  checks.push(...await binDirChecks(opts.binDir));
  checks.push(await confDirCheck(opts.confDir));
  checks.push(await commandCheck("iptables", "ipMasq on bridges"));
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
    ({ values } = parseArgs({
      args,
      options: {
        "bin-dir": { type: "string", default: "/opt/cni/bin" },
        "conf-dir": { type: "string", default: "/etc/cni/net.d" },
        "nri-socket": { type: "string", default: "/var/run/nri/nri.sock" },
        kubeconfig: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`hydra doctor: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const checks = await runChecks({
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
