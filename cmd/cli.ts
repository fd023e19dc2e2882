/**
 * The `hydra` command line: subcommands and help. Each subcommand's module
 * is imported only when it runs.
 *
 * @module
 */

import { VERSION } from "../pkg/version.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";

const VERSION_HELP = `Usage: hydra version [--json]

Prints hydra's version and the CNI protocol versions it speaks.

Options:
  --json      print {"version": …, "cniVersions": […]}
  -h, --help  this help`;

/** A subcommand: its one-line summary and its runner. */
interface Subcommand {
  summary: string;
  run: (args: string[]) => Promise<number>;
}

const subcommands: Record<string, Subcommand> = {
  version: {
    summary: "print hydra's version and the CNI versions it speaks",
    run: (args) => {
      if (args.includes("--help") || args.includes("-h")) {
        console.log(VERSION_HELP);
        return Promise.resolve(0);
      }
      const unknown = args.find((a) => a !== "--json");
      if (unknown !== undefined) {
        console.error(`hydra version: unknown option "${unknown}"\n\n${VERSION_HELP}`);
        return Promise.resolve(2);
      }
      if (args.includes("--json")) {
        console.log(JSON.stringify({ version: VERSION, cniVersions: SUPPORTED_VERSIONS }));
      } else {
        console.log(`hydra ${VERSION}`);
        console.log(`CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}`);
      }
      return Promise.resolve(0);
    },
  },
  demo: {
    summary: "build a small world of namespaces, attach networks, print who reaches whom",
    run: async (args) => (await import("./demo.ts")).runDemo(args),
  },
  install: {
    summary: "install hydra on this node (executable, role symlinks, conf, kubeconfig)",
    run: async (args) => (await import("../install/main.ts")).runInstall(args),
  },
  nri: {
    summary: "attach pods' extra networks as a containerd NRI plugin (nri serve)",
    run: async (args) => (await import("../nri/serve.ts")).runNri(args),
  },
  dra: {
    summary: "hand host NICs and hydra networks to pods as DRA ResourceClaims (dra serve)",
    run: async (args) => (await import("../dra/serve.ts")).runDra(args),
  },
  route: {
    summary: "keep pod networks routed between nodes (route sync)",
    run: async (args) => (await import("../route/main.ts")).runRoute(args),
  },
  daemon: {
    summary: "node daemon: serve this node's pods and networks to the meta-CNI, write their status",
    run: async (args) => (await import("../daemon/node_main.ts")).runDaemon(args),
  },
  ipam: {
    summary: "cluster-wide IPAM: the reclaim controller (ipam controller), pool usage (ipam pools)",
    run: async (args) => (await import("../ipam_controller/main.ts")).runIpam(args),
  },
  policy: {
    summary: "enforce MultiNetworkPolicy on this node's secondary networks (policy sync)",
    run: async (args) => (await import("../policy/main.ts")).runPolicy(args),
  },
  doctor: {
    summary: "check this node's prerequisites and say what is missing",
    run: async (args) => (await import("./doctor.ts")).runDoctor(args),
  },
  "host-exec": {
    summary: "run a delegate plugin chrooted into the host's root (the meta-CNI's chrootDir)",
    run: async (args) => (await import("./host_exec.ts")).runHostExec(args),
  },
};

/** The full help text. */
export function helpText(): string {
  const width = Math.max(...Object.keys(subcommands).map((n) => n.length));
  const lines = Object.entries(subcommands).map(([name, sub]) =>
    `  ${name.padEnd(width)}  ${sub.summary}`
  );
  return [
    `hydra ${VERSION}: multi-network pod networking for Kubernetes`,
    "",
    "Usage: hydra <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    'With CNI_COMMAND set, hydra runs as the meta-CNI plugin (conf type "hydra").',
    "Started as hydra-bridge, hydra-macvlan, hydra-ipam, ... it runs that built-in plugin.",
    'Run "hydra <command> --help" for a command\'s options.',
  ].join("\n");
}

/** Runs the command line; returns the exit status. */
export async function runCli(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    console.log(helpText());
    return first === undefined ? 2 : 0;
  }
  if (first === "--version" || first === "-v") return subcommands.version.run([]);
  const sub = Object.hasOwn(subcommands, first) ? subcommands[first] : undefined;
  if (!sub) {
    console.error(`hydra: unknown command "${first}"\n\n${helpText()}`);
    return 2;
  }
  return await sub.run(rest);
}
