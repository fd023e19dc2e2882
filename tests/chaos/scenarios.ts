/**
 * The scenarios of the fault suite, each with its share of the cycles.
 *
 * @module
 */

import { runCniKill } from "./cni_kill.ts";
import { runUncleanState } from "./unclean_state.ts";
import { runInstallerKill } from "./installer_kill.ts";
import { runRouterKill } from "./router_kill.ts";
import { runFuzz } from "./fuzz.ts";
import { runDaemonFaults } from "./daemon_faults.ts";
import { runNriFlood } from "./flood.ts";
import { runNriKill } from "./nri_kill.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

/** What a scenario gets. */
export interface ScenarioContext {
  report: ChaosReport;
  rng: Rng;
  /** Its fault cycles. */
  cycles: number;
  /** Inputs per parser (fuzzing). */
  fuzz: number;
  log?: (line: string) => void;
}

/** One scenario. */
export interface Scenario {
  name: ScenarioName;
  what: string;
  /** Its weight in the cycles of a run (0: no cycles, e.g. fuzzing). */
  share: number;
  run(ctx: ScenarioContext): Promise<void>;
}

/** The scenarios' names. */
export type ScenarioName =
  | "kill"
  | "unclean"
  | "installer"
  | "router"
  | "daemon"
  | "api"
  | "flood"
  | "nri-kill"
  | "nri-flood"
  | "fuzz";

/** Every scenario, in the order a run takes them. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: "kill",
    what: "kill -9 of the meta-CNI, the bridge plugin and hydra-ipam mid-ADD and mid-DEL",
    share: 5,
    run: (c) => runCniKill(c.report, c.rng, c.cycles),
  },
  {
    name: "unclean",
    what: "state files cut short, zeroed, missing or with a dead writer's temp file beside them",
    share: 2,
    run: (c) => runUncleanState(c.report, c.rng, c.cycles),
  },
  {
    name: "installer",
    what: "kill -9 of hydra install while it copies the executable",
    share: 0.5,
    run: (c) => runInstallerKill(c.report, c.rng, c.cycles),
  },
  {
    name: "router",
    what: "kill -9 of hydra route sync mid-sync over 3,000 nodes",
    share: 0.5,
    run: (c) => runRouterKill(c.report, c.rng, c.cycles),
  },
  {
    name: "daemon",
    what: "kill -9 of hydra daemon with daemonExec requests in flight",
    share: 1,
    run: (c) => runDaemonFaults(c.report, c.rng, c.cycles, "daemon"),
  },
  {
    name: "api",
    what: "the API server killed or frozen, or etcd killed, mid-ADD; then back",
    share: 0.5,
    run: (c) => runDaemonFaults(c.report, c.rng, c.cycles, "api"),
  },
  {
    name: "flood",
    what: "hundreds of connections of garbage and malformed requests at the daemon's socket",
    share: 0.25,
    run: (c) => runDaemonFaults(c.report, c.rng, c.cycles, "flood"),
  },
  {
    name: "nri-kill",
    what: "kill -9 of hydra nri serve mid-RunPodSandbox, with containerd",
    share: 0.25,
    run: (c) => runNriKill(c.report, c.rng, c.cycles),
  },
  {
    name: "nri-flood",
    what: "broken frames and request floods at hydra nri serve's runtime connection",
    share: 0.25,
    run: (c) => runNriFlood(c.report, c.rng, c.cycles),
  },
  {
    name: "fuzz",
    what: "property-based fuzzing of every parser of outside input",
    share: 0,
    run: (c) => runFuzz(c.report, c.fuzz, c.rng.int(1 << 30)),
  },
];
