/**
 * The configurations the Kubernetes-mode benchmark measures (see
 * kube_mode.ts for what each stands for): the conf each one gets on stdin,
 * its executable and CNI_PATH.
 *
 * @module
 */

import type { DelegateKind, KubeCase } from "./kube_mode_lib.ts";

/** What the cases are built from. */
export interface CaseContext {
  /** Scratch folder of the run. */
  dir: string;
  /** Node account kubeconfig as seen from the node namespace. */
  kubeconfig: string;
  /** The cluster network's conf file, per delegate kind. */
  clusterPath: Record<DelegateKind, string>;
  /** Each kind's networks (cluster, blue, green) as confs. */
  netConfs: Record<DelegateKind, Record<string, unknown>[]>;
  /** Each kind's three macvlan networks on the node's uplink, as confs. */
  macvlanConfs: Record<DelegateKind, Record<string, unknown>[]>;
  referenceBin: string;
  hydraBin: string;
  multusExe: string;
  multusVersion: string;
  daemonSocket: string;
  /** Multus thick when it runs: its shim and the conf its daemon wrote for the runtime. */
  multusThick?: { shim: string; conf: Uint8Array };
}

const encoder = new TextEncoder();

/** One exec per network, the first as eth0: how a runtime runs networks without a meta-plugin. */
function aloneSteps(confs: Record<string, unknown>[]): { config: Uint8Array; ifName: string }[] {
  return confs.map((conf, i) => ({
    config: encoder.encode(JSON.stringify(conf)),
    ifName: i === 0 ? "eth0" : `net${i}`,
  }));
}

/** Every case, in the order they take turns. */
export function kubeCases(ctx: CaseContext): Omit<KubeCase, "pods">[] {
  const hydraConf = (kind: DelegateKind, viaDaemon: boolean, exec = false) =>
    encoder.encode(JSON.stringify({
      cniVersion: "1.0.0",
      // Under daemonExec each conf is a file of its own in the node's conf folder.
      name: exec ? `hydra-${kind}` : "hydra",
      type: "hydra",
      kubeconfig: ctx.kubeconfig,
      clusterNetwork: ctx.clusterPath[kind],
      cacheDir: `${ctx.dir}/hydra-cache`,
      confDir: `${ctx.dir}/confdir`,
      daemonSocket: viaDaemon ? ctx.daemonSocket : "",
      ...(exec ? { daemonExec: true } : {}),
      apiTimeout: 10,
      // The NADs keep their state (IPAM data) in the run's scratch folder.
      nadPathRoots: { state: [ctx.dir] },
    }));
  /** The same confs asking for daemonExec: each exec hands its invocation to the daemon. */
  const handedToDaemon = (confs: Record<string, unknown>[]) =>
    confs.map((c) => ({ ...c, daemonExec: true, daemonSocket: ctx.daemonSocket }));
  /** A case without a meta-plugin: `plugin` from `kind`'s folder exec'd once per conf. */
  const aloneCase = (
    key: string,
    description: string,
    kind: DelegateKind,
    plugin: string,
    confs: Record<string, unknown>[],
  ): Omit<KubeCase, "pods"> => {
    const bin = kind === "reference" ? ctx.referenceBin : ctx.hydraBin;
    return {
      key,
      description,
      exe: `${bin}/${plugin}`,
      path: [bin],
      delegates: kind,
      config: new Uint8Array(),
      alone: aloneSteps(confs),
    };
  };
  return [
    aloneCase(
      "delegates_alone_reference",
      "no meta-plugin: the reference bridge + host-local exec'd once per network (ADD ×3, DEL ×3), " +
        "the floor both meta-plugins build on",
      "reference",
      "bridge",
      ctx.netConfs.reference,
    ),
    aloneCase(
      "alone_daemonexec_builtin",
      "no meta-plugin: hydra-bridge + hydra-ipam exec'd once per network as a runtime execs a " +
        "network's own plugin (ADD ×3, DEL ×3), each conf asking for daemonExec, so each exec " +
        "hands its invocation to hydra daemon; beside delegates_alone_reference",
      "builtin",
      "hydra-bridge",
      handedToDaemon(ctx.netConfs.builtin),
    ),
    aloneCase(
      "macvlan_alone_reference",
      "no meta-plugin: the reference macvlan + host-local exec'd once per network " +
        "(three macvlan networks on the node's uplink; ADD ×3, DEL ×3)",
      "reference",
      "macvlan",
      ctx.macvlanConfs.reference,
    ),
    aloneCase(
      "macvlan_alone_daemonexec_builtin",
      "no meta-plugin: hydra-macvlan + hydra-ipam exec'd once per network, each " +
        "conf asking for daemonExec; beside macvlan_alone_reference",
      "builtin",
      "hydra-macvlan",
      handedToDaemon(ctx.macvlanConfs.builtin),
    ),
    {
      key: "multus_thin_reference",
      description:
        `Multus thin ${ctx.multusVersion} with a kubeconfig, exec'ing the reference bridge + host-local`,
      exe: ctx.multusExe,
      path: [ctx.referenceBin],
      delegates: "reference",
      config: encoder.encode(JSON.stringify({
        cniVersion: "1.0.0",
        name: "multus",
        type: "multus",
        kubeconfig: ctx.kubeconfig,
        clusterNetwork: ctx.clusterPath.reference,
        cniDir: `${ctx.dir}/multus-cache`,
        binDir: ctx.referenceBin,
        confDir: `${ctx.dir}/confdir`,
        logToStderr: false,
      })),
    },
    ...(ctx.multusThick
      ? [{
        key: "multus_thick_reference",
        description: `Multus thick ${ctx.multusVersion} (daemon + shim, as its DaemonSet runs ` +
          "it: the conf its daemon wrote), its daemon exec'ing the reference bridge + host-local",
        exe: ctx.multusThick.shim,
        path: [ctx.referenceBin],
        delegates: "reference" as const,
        config: ctx.multusThick.conf,
      }]
      : []),
    {
      key: "hydra_direct_reference",
      description:
        "hydra meta-CNI asking the API server itself, exec'ing the reference bridge + host-local",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "reference",
      config: hydraConf("reference", false),
    },
    {
      key: "hydra_daemon_reference",
      description:
        "hydra meta-CNI through hydra daemon, exec'ing the reference bridge + host-local",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "reference",
      config: hydraConf("reference", true),
    },
    {
      key: "hydra_direct_builtin",
      description:
        "hydra meta-CNI asking the API server itself, hydra-bridge + hydra-ipam in-process",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "builtin",
      config: hydraConf("builtin", false),
    },
    {
      key: "hydra_daemon_builtin",
      description: "hydra meta-CNI through hydra daemon, hydra-bridge + hydra-ipam in-process",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "builtin",
      config: hydraConf("builtin", true),
    },
    {
      key: "hydra_daemonexec_reference",
      description:
        "hydra meta-CNI handing the whole invocation to hydra daemon (daemonExec), which execs " +
        "the reference bridge + host-local",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "reference",
      config: hydraConf("reference", true, true),
    },
    {
      key: "hydra_daemonexec_builtin",
      description:
        "hydra meta-CNI handing the whole invocation to hydra daemon (daemonExec), which runs " +
        "hydra-bridge + hydra-ipam in its process; its DEL answers once the pod's links are " +
        "renamed away and their group deletion is sent, not after the kernel's release wait",
      exe: `${ctx.hydraBin}/hydra`,
      path: [ctx.hydraBin, ctx.referenceBin],
      delegates: "builtin",
      config: hydraConf("builtin", true, true),
    },
  ];
}
