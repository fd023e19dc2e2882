/**
 * What the plugin benchmark measures: one {@link BenchCase} per measured
 * configuration, each able to produce its config for a given pod.
 *
 * - (a) hydra's meta-CNI, three attachments run in-process by built-ins
 *   (hydra-bridge, hydra-macvlan, hydra-host-device) with hydra-ipam;
 * - (b) the same meta-CNI exec'ing the reference plugins with host-local;
 * - (c) Multus thin in conf-file mode (`delegates`, no kubeconfig) exec'ing
 *   the same reference plugins: what Multus thin does on a node;
 * - (d) each hydra plugin exec'd alone vs its reference twin (same config,
 *   `type` and IPAM `type` swapped).
 *
 * Each case owns its bridges, subnets and state folders, so cases never
 * see each other's leftovers. Every network uses IPAM, so every attachment
 * does the same kind of work in every case.
 *
 * @module
 */

import type { BenchWorld } from "./world.ts";

/** Which plugin family runs an attachment. */
export type Family = "hydra" | "reference";

/** A plugin kind measured in (d); the third attachment of (a)–(c) is one of these. */
export type Kind = "bridge" | "macvlan" | "host-device" | "vxlan" | "loopback";

/** Where the executables are. */
export interface Binaries {
  /** Folder with `hydra` and its role symlinks. */
  hydraBin: string;
  /** Folder with the reference plugins. */
  referenceBin: string;
  /** Multus thin, if built. */
  multus?: string;
}

/** One measured configuration. */
export interface BenchCase {
  /** Key in the JSON output. */
  key: string;
  /** What it is, for the reader of the JSON. */
  description: string;
  /** Executable the runtime would exec. */
  exe: string;
  /** CNI_PATH. */
  path: string[];
  /** CNI_IFNAME. */
  ifName: string;
  /** Plugin executables started per ADD (the exec'd one included). */
  execsPerAdd: number;
  /** Needs a spare host device per pod (host-device attachment). */
  needsSpare: boolean;
  /** Interfaces the pod must have after ADD. */
  expectIfaces: string[];
  /** The stdin config for a pod (`spare`: its host device, if needed). */
  config(spare?: string): Uint8Array;
}

type Json = Record<string, unknown>;

const encoder = new TextEncoder();

function ipam(family: Family, subnet: string, dataDir: string): Json {
  return {
    type: family === "hydra" ? "hydra-ipam" : "host-local",
    ranges: [[{ subnet }]],
    dataDir,
  };
}

function pluginType(family: Family, kind: Kind): string {
  return family === "hydra" ? `hydra-${kind}` : kind;
}

/** Settings that make one attachment's config unique to its case. */
interface NetSlot {
  /** Network name (also the IPAM folder name). */
  name: string;
  /** Second octet of its 10.x.0.0/16 subnet. */
  octet: number;
  /** Bridge / vxlan device suffix. */
  tag: string;
}

/** The config of one attachment of `kind` for `family`. */
function attachment(
  world: BenchWorld,
  family: Family,
  kind: Kind,
  slot: NetSlot,
  cniVersion: string,
  spare?: string,
): Json {
  const conf: Json = { cniVersion, name: slot.name, type: pluginType(family, kind) };
  const subnet = `10.${slot.octet}.0.0/16`;
  const dataDir = `${world.dir}/ipam`;
  switch (kind) {
    case "bridge":
      Object.assign(conf, { bridge: `hb${world.id}${slot.tag}`, isGateway: true });
      break;
    case "macvlan":
      Object.assign(conf, { master: world.uplink, mode: "bridge" });
      break;
    case "host-device":
      if (!spare) throw new Error("host-device needs a spare device");
      conf.device = spare;
      break;
    case "vxlan":
      Object.assign(conf, {
        vni: 4000 + slot.octet,
        dev: world.uplink,
        local: world.uplinkAddress,
        vxlan: `hbx${world.id}${slot.tag}`,
        bridge: `hb${world.id}${slot.tag}`,
      });
      break;
    case "loopback":
      return conf;
  }
  conf.ipam = ipam(family, subnet, dataDir);
  return conf;
}

function bytes(conf: Json): Uint8Array {
  return encoder.encode(JSON.stringify(conf));
}

/** The three attachments of the multi-network cases, in order (eth0, net1, net2). */
export const META_KINDS: readonly Kind[] = ["bridge", "macvlan", "host-device"];

function metaDelegates(
  world: BenchWorld,
  family: Family,
  caseTag: string,
  firstOctet: number,
  kinds: readonly Kind[],
  cniVersion: string,
  spare?: string,
): Json[] {
  return kinds.map((kind, i) =>
    attachment(
      world,
      family,
      kind,
      { name: `bench-${caseTag}${i}`, octet: firstOctet + i, tag: `${caseTag}${i}` },
      cniVersion,
      spare,
    )
  );
}

function metaIfaces(kinds: readonly Kind[]): string[] {
  return kinds.map((_, i) => (i === 0 ? "eth0" : `net${i}`));
}

/** Cases (a) and (b): hydra's meta-CNI with built-in or reference delegates. */
export function metaCase(
  world: BenchWorld,
  bins: Binaries,
  family: Family,
  kinds: readonly Kind[],
  cniVersion: string,
): BenchCase {
  const tag = family === "hydra" ? "a" : "b";
  const firstOctet = family === "hydra" ? 201 : 204;
  const ref = family === "reference";
  return {
    key: ref ? "b_meta_exec_reference" : "a_meta_inprocess",
    description: ref
      ? `hydra meta-CNI exec'ing the reference plugins (${kinds.join(", ")}) with host-local`
      : `hydra meta-CNI, built-ins in-process (${
        kinds.map((k) => `hydra-${k}`).join(", ")
      }) with hydra-ipam`,
    exe: `${bins.hydraBin}/hydra`,
    path: ref ? [bins.referenceBin] : [bins.hydraBin],
    ifName: "eth0",
    // Each reference plugin execs host-local once.
    execsPerAdd: ref ? 1 + kinds.length * 2 : 1,
    needsSpare: kinds.includes("host-device"),
    expectIfaces: metaIfaces(kinds),
    config: (spare) =>
      bytes({
        cniVersion,
        name: `bench-${tag}`,
        type: "hydra",
        delegates: metaDelegates(world, family, tag, firstOctet, kinds, cniVersion, spare),
        cacheDir: `${world.dir}/${tag}/cache`,
        ...(ref ? { binDir: bins.referenceBin } : {}),
      }),
  };
}

/** Case (c): Multus thin, conf-file mode, exec'ing the reference plugins. */
export function multusCase(
  world: BenchWorld,
  bins: Binaries & { multus: string },
  kinds: readonly Kind[],
  cniVersion: string,
): BenchCase {
  return {
    key: "c_multus_thin_reference",
    description: `Multus thin (delegates, no kubeconfig) exec'ing the reference plugins (${
      kinds.join(", ")
    }) with host-local`,
    exe: bins.multus,
    path: [bins.referenceBin],
    ifName: "eth0",
    execsPerAdd: 1 + kinds.length * 2,
    needsSpare: kinds.includes("host-device"),
    expectIfaces: metaIfaces(kinds),
    config: (spare) =>
      bytes({
        cniVersion,
        name: "bench-c",
        type: "multus",
        delegates: metaDelegates(world, "reference", "c", 207, kinds, cniVersion, spare),
        cniDir: `${world.dir}/c/cache`,
        binDir: bins.referenceBin,
      }),
  };
}

const SINGLE_OCTET: Record<Kind, number> = {
  "bridge": 210,
  "macvlan": 212,
  "host-device": 214,
  "loopback": 0,
  "vxlan": 216,
};

/** Case (d): one plugin exec'd alone through its own executable. */
export function singleCase(
  world: BenchWorld,
  bins: Binaries,
  family: Family,
  kind: Kind,
  cniVersion: string,
): BenchCase {
  const hydra = family === "hydra";
  const tag = `${hydra ? "h" : "r"}${kind[0]}`;
  const slot = { name: `bench-d${tag}`, octet: SINGLE_OCTET[kind] + (hydra ? 0 : 1), tag };
  const ifName = kind === "loopback" ? "lo" : "eth0";
  return {
    key: `${kind}.${family}`,
    description: `${pluginType(family, kind)} exec'd alone${
      kind === "loopback" ? "" : ` with ${hydra ? "hydra-ipam" : "host-local"}`
    }`,
    exe: hydra ? `${bins.hydraBin}/hydra-${kind}` : `${bins.referenceBin}/${kind}`,
    path: [hydra ? bins.hydraBin : bins.referenceBin],
    ifName,
    execsPerAdd: hydra || kind === "loopback" ? 1 : 2,
    needsSpare: kind === "host-device",
    expectIfaces: [ifName],
    config: (spare) => bytes(attachment(world, family, kind, slot, cniVersion, spare)),
  };
}
