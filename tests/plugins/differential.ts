/**
 * The differential harness: runs one scenario (ADD, CHECK, DEL) with a
 * plugin in a fresh world and records what a user could observe — the
 * result, the kernel state of host and pod after ADD and after DEL — with
 * MACs and random names normalized, so the records of hydra's plugin and of
 * the reference plugin can be compared for equality.
 *
 * @module
 */

import type { TestNetns } from "../helpers/netns.ts";
import {
  containerId,
  invoke,
  kernelState,
  normalizeResult,
  type StateOptions,
  withWorld,
  type World,
} from "./helpers.ts";

/** One plugin under test: its executable, CNI_PATH and config. */
export interface Side {
  binary: string;
  path: string[];
  /** The config, given the world (for dataDir, device names, …). */
  config: (w: World) => Record<string, unknown>;
}

/** What to do and to look at. */
export interface Scenario {
  /** The container ID (the same on both sides: it names masquerade chains). */
  containerId?: string;
  ifName?: string;
  /** CNI_ARGS. */
  args?: string;
  /** Prepares the world before ADD (create a master device, …). */
  setup?: (w: World) => Promise<void>;
  /** prevResult for a chained plugin (given the world). */
  prevResult?: (w: World) => Record<string, unknown>;
  /** Host sysctls to read; may use the ADD result (random veth names). */
  hostSysctls?: (result: Record<string, unknown>) => string[];
  podSysctls?: string[];
  host?: Omit<StateOptions, "sysctls">;
  /** Skip CHECK (for configs below 0.4.0). */
  noCheck?: boolean;
}

/** What one run showed. */
export interface Observed {
  add: { code: number; result: unknown };
  hostAfterAdd: unknown;
  podAfterAdd: unknown;
  checkCode?: number;
  delCode: number;
  hostAfterDel: unknown;
  podAfterDel: unknown;
}

function renameKeys(obj: unknown): unknown {
  if (!obj || typeof obj !== "object") return obj;
  return Object.fromEntries(
    Object.entries(obj).map(([k, v]) => [k.replace(/veth[0-9a-f]{8}/, "veth*"), v]),
  );
}

async function state(ns: TestNetns, opts: StateOptions) {
  const s = await kernelState(ns, opts);
  if (s.sysctls) s.sysctls = renameKeys(s.sysctls);
  return s;
}

/** Runs `scenario` with `side` in a fresh world. */
export function observe(scenario: Scenario, side: Side): Promise<Observed> {
  return withWorld(1, async (w) => {
    await scenario.setup?.(w);
    const pod = w.pods[0];
    const base = side.config(w);
    const inv = {
      containerId: scenario.containerId ?? containerId(),
      netns: pod.path,
      ifName: scenario.ifName ?? "eth0",
      args: scenario.args,
      path: side.path,
    };
    const addConf = scenario.prevResult ? { ...base, prevResult: scenario.prevResult(w) } : base;
    const add = await invoke(w.host, side.binary, { ...inv, command: "ADD" }, addConf);
    if (add.code !== 0) {
      throw new Error(`${side.binary} ADD failed: ${add.stdout} ${add.stderr}`);
    }
    const result = add.json ?? {};
    const hostOpts = { ...scenario.host, sysctls: scenario.hostSysctls?.(result) };
    const podOpts = { sysctls: scenario.podSysctls };
    const out: Observed = {
      add: { code: add.code, result: normalizeResult(result) },
      hostAfterAdd: await state(w.host, hostOpts),
      podAfterAdd: await state(pod, podOpts),
      delCode: -1,
      hostAfterDel: undefined,
      podAfterDel: undefined,
    };
    if (!scenario.noCheck) {
      const check = await invoke(w.host, side.binary, { ...inv, command: "CHECK" }, {
        ...base,
        prevResult: result,
      });
      if (check.code !== 0) console.error(`${side.binary} CHECK: ${check.stdout}`);
      out.checkCode = check.code;
    }
    const del = await invoke(w.host, side.binary, { ...inv, command: "DEL" }, {
      ...base,
      prevResult: result,
    });
    if (del.code !== 0) console.error(`${side.binary} DEL: ${del.stdout} ${del.stderr}`);
    out.delCode = del.code;
    out.hostAfterDel = await state(w.host, hostOpts);
    out.podAfterDel = await state(pod, podOpts);
    return out;
  });
}

/**
 * Observes `scenario` with the reference plugin, then with hydra's, with
 * the same container ID; returns both records.
 */
export async function observeBoth(
  scenario: Scenario,
  reference: Side,
  hydra: Side,
): Promise<{ want: Observed; got: Observed }> {
  const fixed = { ...scenario, containerId: scenario.containerId ?? containerId() };
  const want = await observe(fixed, reference);
  const got = await observe(fixed, hydra);
  return { want, got };
}

/**
 * `observed` without the links' queue lengths, for comparing with Debian's
 * older reference build, which leaves 1000 where the kernel's default is 0.
 */
export function withoutTxqlen<T>(observed: T): T {
  return JSON.parse(JSON.stringify(observed), (k, v) => (k === "txqlen" ? undefined : v));
}
