/**
 * `hydra dra serve`: hydra's DRA kubelet plugin.
 *
 * - The DRA node service (`DRAPlugin` v1 and v1beta1, whichever the
 *   kubelet picks) on `<kubelet-dir>/plugins/hydra.clusternet.io/dra.sock`;
 *   prepare.ts does the work. Calls run one at a time (a pod's claims are
 *   checked against each other).
 * - Registration: `pluginregistration.Registration` on a socket in
 *   `<kubelet-dir>/plugins_registry`, created after the DRA service is up,
 *   removed first on shutdown (the kubelet then forgets the plugin).
 * - ResourceSlices: the pool's NICs (rescanned every few seconds, and
 *   before each prepare), NICs that are out in pods (still allocated; kept
 *   with what was known of them) and the network slots.
 * - The reporter (report.ts): claim status and pod network-status from the
 *   sandbox records `hydra nri serve` writes.
 *
 * @module
 */

import { createKeyedQueue } from "../pkg/async.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { formatListenAddress, type HealthServer, serveHealth } from "../pkg/http.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { getNode } from "../kube/objects.ts";
import {
  DRA_SERVICES,
  DRA_SUPPORTED_VERSIONS,
  draMethods,
  type PrepareResponse,
  type UnprepareResponse,
} from "../kubelet/dra_api.ts";
import { bind, serveUnix, type UnixServer } from "../kubelet/grpc.ts";
import {
  DRA_PLUGIN_TYPE,
  getInfoMethod,
  notifyRegistrationStatusMethod,
} from "../kubelet/registration.ts";
import { closeHandle, openHandle } from "../netlink/socket.ts";
import { type Device, networkSlots, nicDevice, sortDevices } from "./devices.ts";
import { listHostNics, type NicInfo } from "./inventory.ts";
import { createDraMetrics, type DraMetrics } from "./metrics.ts";
import { ATTR, DRIVER_NAME, nicDeviceName } from "../drasandbox/names.ts";
import { draServeHelp, type DraServeOptions, parseDraServeArgs, UsageError } from "./options.ts";
import { prepareClaim, type PrepareDeps, unprepareClaim } from "./prepare.ts";
import { startReporter } from "./report.ts";
import { canonicalJson, publishDevices } from "./slices.ts";
import { listClaims, type StateDirs, stateDirs } from "../drasandbox/state.ts";

const API_TIMEOUT_MS = 5000;
/** How often the published slices are compared with the API server's even when nothing changed. */
const API_RECHECK_MS = 60_000;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The NICs of the pool, and the devices to publish. */
interface Inventory {
  nics: Map<string, NicInfo>;
  /** Last attributes seen of every NIC ever published, for those now in pods. */
  seen: Map<string, Device>;
}

function scan(opts: DraServeOptions, inv: Inventory): void {
  const h = openHandle();
  try {
    const nics = listHostNics(h, opts.filter, opts.sysfsRoot);
    inv.nics = new Map(nics.map((n) => [nicDeviceName(n.name), n]));
    for (const n of nics) inv.seen.set(nicDeviceName(n.name), nicDevice(n));
  } finally {
    closeHandle(h);
  }
}

/** What to publish: host NICs, NICs allocated and out in pods, network slots. */
function wantedDevices(opts: DraServeOptions, inv: Inventory, dirs: StateDirs): Device[] {
  const out = new Map<string, Device>();
  for (const name of inv.nics.keys()) out.set(name, inv.seen.get(name)!);
  for (const claim of listClaims(dirs)) {
    for (const d of claim.devices) {
      if (!d.nic || out.has(d.device)) continue;
      out.set(
        d.device,
        inv.seen.get(d.device) ?? {
          name: d.device,
          attributes: {
            [ATTR.kind]: { string: "nic" },
            [ATTR.ifName]: { string: d.nic.hostName },
            [ATTR.mac]: { string: d.nic.mac },
          },
        },
      );
    }
  }
  for (const slot of networkSlots(opts.networkSlots)) out.set(slot.name, slot);
  return sortDevices([...out.values()]);
}

interface Running {
  client: KubeClient;
  log: Logger;
  metrics: DraMetrics;
  registered: boolean;
  published: boolean;
}

function draBindings(deps: PrepareDeps, r: Running, refresh: () => void) {
  // One call at a time: a pod's claims are checked against each other.
  const calls = createKeyedQueue();
  const one = <T>(task: () => Promise<T>) => calls.run("kubelet", task);
  const prepare = (req: { claims: { namespace: string; uid: string; name: string }[] }) =>
    one(async (): Promise<PrepareResponse> => {
      const t0 = performance.now();
      refresh();
      const claims: PrepareResponse["claims"] = {};
      for (const ref of req.claims) {
        claims[ref.uid] = await prepareClaim(deps, ref);
        r.metrics.requests.inc({
          method: "prepare",
          result: claims[ref.uid].error ? "error" : "ok",
        });
      }
      r.metrics.duration.observe({ method: "prepare" }, (performance.now() - t0) / 1000);
      return { claims };
    });
  const unprepare = (req: { claims: { namespace: string; uid: string; name: string }[] }) =>
    one(async (): Promise<UnprepareResponse> => {
      const t0 = performance.now();
      const claims: UnprepareResponse["claims"] = {};
      for (const ref of req.claims) {
        claims[ref.uid] = { error: await unprepareClaim(deps, ref) };
        r.metrics.requests.inc({
          method: "unprepare",
          result: claims[ref.uid].error ? "error" : "ok",
        });
      }
      r.metrics.duration.observe({ method: "unprepare" }, (performance.now() - t0) / 1000);
      return { claims };
    });
  return Object.values(DRA_SERVICES).flatMap((service) => {
    const m = draMethods(service);
    return [bind(m.prepare, prepare), bind(m.unprepare, unprepare)];
  });
}

function registrationBindings(draSocket: string, r: Running) {
  return [
    bind(getInfoMethod, () =>
      Promise.resolve({
        type: DRA_PLUGIN_TYPE,
        name: DRIVER_NAME,
        endpoint: draSocket,
        supportedVersions: DRA_SUPPORTED_VERSIONS,
      })),
    bind(notifyRegistrationStatusMethod, (s) => {
      r.registered = s.pluginRegistered;
      r.metrics.registered.set({}, s.pluginRegistered ? 1 : 0);
      if (s.pluginRegistered) r.log.info("registered with the kubelet");
      else r.log.error("the kubelet refused the plugin", { error: s.error });
      return Promise.resolve({});
    }),
  ];
}

async function nodeUid(client: KubeClient, name: string, log: Logger): Promise<string | undefined> {
  try {
    return (await getNode(client, name, { timeoutMs: API_TIMEOUT_MS })).metadata.uid;
  } catch (err) {
    log.warn("cannot read the Node; slices get no owner", { node: name, error: message(err) });
    return undefined;
  }
}

async function serve(opts: DraServeOptions, log: Logger): Promise<number> {
  const dirs = stateDirs(opts.stateDir);
  const conn = await resolveConnection(opts.kubeconfig);
  if (!conn) {
    throw new Error("no API access: pass --kubeconfig or run in a pod with a ServiceAccount");
  }
  const client = createKubeClient(conn, { timeoutMs: API_TIMEOUT_MS, userAgent: "hydra-dra" });
  const metrics = createDraMetrics();
  const r: Running = { client, log, metrics, registered: false, published: false };
  const inv: Inventory = { nics: new Map(), seen: new Map() };
  const uid = await nodeUid(client, opts.nodeName, log);
  const servers: UnixServer[] = [];
  let health: HealthServer | undefined;
  let publishing: Promise<void> = Promise.resolve();

  // The API is asked only when the devices changed, and every minute to heal what others did
  // to the slices (the kubelet removes a driver's slices when the driver is gone a while).
  let lastPublished = "";
  let lastChecked = 0;
  const publish = () => {
    publishing = publishing.then(async () => {
      try {
        scan(opts, inv);
        const devices = wantedDevices(opts, inv, dirs);
        const wanted = canonicalJson(devices);
        if (wanted === lastPublished && Date.now() - lastChecked < API_RECHECK_MS) return;
        const wrote = await publishDevices(
          { client, nodeName: opts.nodeName, nodeUid: uid },
          devices,
        );
        metrics.devices.reset();
        for (const kind of ["nic", "network"]) {
          const count = devices.filter((d) => {
            const a = d.attributes[ATTR.kind];
            return a !== undefined && "string" in a && a.string === kind;
          }).length;
          metrics.devices.set({ kind }, count);
        }
        if (wrote) log.info("devices published", { devices: devices.map((d) => d.name) });
        lastPublished = wanted;
        lastChecked = Date.now();
        r.published = true;
      } catch (err) {
        metrics.publishFailures.inc();
        log.warn("cannot publish the node's devices; retrying", { error: message(err) });
      }
    });
    return publishing;
  };

  const stop = new AbortController();
  const signals: [Deno.Signal, () => void][] = (["SIGTERM", "SIGINT"] as const).map((
    sig,
  ) => [sig, () => {
    if (!stop.signal.aborted) log.info(`${sig}: stopping`);
    stop.abort();
  }]);
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);
  const reporter = startReporter({
    client,
    dirs,
    log,
    nodeName: opts.nodeName,
    onPass: (n) => n && metrics.reports.inc({ result: "ok" }, n),
    setupGraceMs: opts.setupGraceMs,
  });
  const ticker = setInterval(publish, opts.rescanMs);
  try {
    await publish();
    const pluginDir = `${opts.kubeletDir}/plugins/${DRIVER_NAME}`;
    const registryDir = `${opts.kubeletDir}/plugins_registry`;
    await Deno.mkdir(pluginDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(registryDir, { recursive: true, mode: 0o700 });
    const draSocket = `${pluginDir}/dra.sock`;
    const deps: PrepareDeps = {
      client,
      dirs,
      nics: () => inv.nics,
      kube: { clusterNetwork: "", confDir: opts.confDir, nadPathRoots: opts.nadPathRoots },
      cniPath: opts.cniBinDirs,
      apiTimeoutMs: API_TIMEOUT_MS,
      log,
    };
    const refresh = () => {
      try {
        scan(opts, inv);
      } catch (err) {
        log.warn("cannot look at the host interfaces", { error: message(err) });
      }
    };
    servers.push(await serveUnix(draSocket, draBindings(deps, r, refresh)));
    servers.push(
      await serveUnix(`${registryDir}/${DRIVER_NAME}-reg.sock`, registrationBindings(draSocket, r)),
    );
    if (opts.healthAddr) {
      health = await serveHealth(opts.healthAddr, {
        registry: metrics.registry,
        healthz: () => ({ ok: true, detail: "serving" }),
        readyz: () =>
          r.registered && r.published ? { ok: true, detail: "registered, devices published" } : {
            ok: false,
            detail: `${r.registered ? "" : "not registered with the kubelet; "}${
              r.published ? "" : "devices not published"
            }`,
          },
      });
      log.info("health endpoint listening", { address: formatListenAddress(health.address) });
    }
    log.info("serving", { node: opts.nodeName, socket: draSocket, state: opts.stateDir });
    await new Promise<void>((resolve) =>
      stop.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    return 0;
  } finally {
    clearInterval(ticker);
    // Registration first: the kubelet stops calling before the service goes.
    for (const s of servers.reverse()) await s.close().catch(() => {});
    await reporter.stop();
    await publishing;
    await health?.shutdown().catch(() => {});
    for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
    client.close();
  }
}

/** Runs `hydra dra <subcommand> …`; returns the exit status. */
export async function runDra(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    console.log(draServeHelp());
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "serve") {
    console.error(`hydra dra: unknown subcommand "${sub}"\n\n${draServeHelp()}`);
    return 2;
  }
  let opts: DraServeOptions;
  try {
    opts = parseDraServeArgs(rest);
  } catch (err) {
    console.error(`hydra dra serve: ${message(err)}\n\nRun "hydra dra serve --help".`);
    return 2;
  }
  if (opts.help) {
    console.log(draServeHelp());
    return 0;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
    fields: { role: "dra" },
  });
  try {
    return await serve(opts, log);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hydra dra serve: ${err.message}`);
      return 2;
    }
    log.error("DRA driver failed", { error: message(err) });
    console.error(`hydra dra serve: ${message(err)}`);
    return 1;
  }
}
