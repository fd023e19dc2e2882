/**
 * The NRI stub against a real containerd (version pinned in
 * tests/infra/versions.env) with the reference bridge plugin as default CNI:
 * registration, Configure and Synchronize, the pod lifecycle of `crictl runp`
 * / `stopp` / `rmp` with the sandbox's netns path, reconnection after a
 * containerd restart, and what containerd does with hydra's answers.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Containerd, startContainerd } from "../infra/containerd.ts";
import { referencePluginDir, requirePeers, versions } from "../infra/peers.ts";
import { poll } from "../infra/process.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";
import {
  type HookContext,
  netnsPathOf,
  type NriHooks,
  type NriPluginOptions,
  type PluginStatus,
  type PodSandbox,
  runNriPlugin,
} from "../../nri/stub.ts";

interface Seen {
  /** "aborted": a hanging run hook was told its answer is no longer awaited. */
  hook: "sync" | "run" | "stop" | "remove" | "aborted";
  rpc: string;
  pod?: PodSandbox;
  pods?: PodSandbox[];
  /** For run: whether the netns path named in the event existed during the hook. */
  netnsExisted?: boolean;
  runtime: HookContext["runtime"];
}

/** Hooks that record every call; run hooks may be told to fail or hang by annotation. */
function recorder(): { hooks: NriHooks; seen: Seen[] } {
  const seen: Seen[] = [];
  const hooks: NriHooks = {
    onSynchronize(pods, ctx) {
      seen.push({ hook: "sync", rpc: ctx.rpc, pods, runtime: ctx.runtime });
      return Promise.resolve();
    },
    onRunPodSandbox(pod, ctx) {
      const path = netnsPathOf(pod);
      let netnsExisted = false;
      try {
        netnsExisted = path !== undefined && Deno.statSync(path).isFile;
      } catch {
        netnsExisted = false;
      }
      seen.push({ hook: "run", rpc: ctx.rpc, pod, netnsExisted, runtime: ctx.runtime });
      const behaviour = pod.annotations["hydra.test/behaviour"];
      if (behaviour === "fail") return Promise.reject(new Error("refused by the test hook"));
      if (behaviour === "hang") {
        return new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            seen.push({ hook: "aborted", rpc: ctx.rpc, pod, runtime: ctx.runtime });
            resolve();
          })
        );
      }
      return Promise.resolve();
    },
    onStopPodSandbox(pod, ctx) {
      seen.push({ hook: "stop", rpc: ctx.rpc, pod, runtime: ctx.runtime });
      return Promise.resolve();
    },
    onRemovePodSandbox(pod, ctx) {
      seen.push({ hook: "remove", rpc: ctx.rpc, pod, runtime: ctx.runtime });
      return Promise.resolve();
    },
  };
  return { hooks, seen };
}

interface World {
  ctd: Containerd;
  tmp: string;
  /** Runs a pod sandbox; returns its id. */
  runp(name: string, annotations?: Record<string, string>): Promise<string>;
}

/** A containerd whose default network is a reference bridge, for the duration of `body`. */
async function withContainerd(body: (world: World) => Promise<void>): Promise<void> {
  // Root, containerd and its tools, and the reference plugins the default network uses.
  requirePeers("containerd", "containerd-shim-runc-v2", "crictl", "ctr");
  referencePluginDir();
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
    await Deno.writeTextFile(
      join(confDir, "10-default.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: uniqueName("def"),
        plugins: [{
          type: "bridge",
          bridge: uniqueName("hybr"),
          isGateway: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: `10.251.${octet}.0/24` }]],
            dataDir: join(tmp, "ipam"),
          },
        }],
      }),
    );
    const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: [referencePluginDir()] });
    try {
      await body({
        ctd,
        tmp,
        async runp(name, annotations = {}) {
          const config = join(tmp, `${name}.json`);
          await Deno.writeTextFile(
            config,
            JSON.stringify({
              metadata: { name, namespace: "nri-test", uid: crypto.randomUUID() },
              labels: { "hydra.test/pod": name },
              annotations,
              log_directory: join(tmp, "logs", name),
              linux: { cgroup_parent: ctd.cgroupParent },
            }),
          );
          return (await ctd.crictl("runp", config)).trim();
        },
      });
    } finally {
      await ctd.stop();
    }
  });
}

/** Runs the stub for the duration of `body`, with its status history. */
async function withPlugin(
  ctd: Containerd,
  hooks: NriHooks,
  body: (statuses: PluginStatus[]) => Promise<void>,
  options: NriPluginOptions = {},
): Promise<void> {
  const stop = new AbortController();
  const statuses: PluginStatus[] = [];
  const running = runNriPlugin(hooks, {
    socketPath: ctd.nriSocket,
    signal: stop.signal,
    log: () => {},
    onStatus: (s) => statuses.push(s),
    reconnectInitialMs: 100,
    reconnectMaxMs: 1000,
    inheritedSocketFd: null,
    ...options,
  });
  try {
    await body(statuses);
  } finally {
    stop.abort();
    await running;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  if (!await poll(check, timeoutMs)) throw new Error(`timed out waiting for ${what}`);
}

const syncs = (statuses: PluginStatus[]) =>
  statuses.filter((s) => s.phase === "synchronized").length;

Deno.test({
  name:
    "containerd: registers, is configured and synchronized, and comes back after containerd restarts",
  async fn() {
    await withContainerd(async ({ ctd }) => {
      const { hooks, seen } = recorder();
      await withPlugin(ctd, hooks, async (statuses) => {
        await until("first Synchronize", () => syncs(statuses) === 1);
        const sync = seen.find((s) => s.hook === "sync")!;
        assert.equal(sync.rpc, "Synchronize");
        assert.equal(sync.runtime.name, "containerd");
        assert.equal(sync.runtime.version, versions().CONTAINERD_VERSION);
        assert.equal(sync.runtime.requestTimeoutMs, 2000);
        assert.equal(sync.runtime.registrationTimeoutMs, 5000);
        assert.equal(sync.runtime.nriVersion, versions().CONTAINERD_NRI_VERSION);
        assert.deepEqual(sync.pods, []);
        assert.ok(!statuses.some((s) => s.phase === "disconnected"));

        await ctd.restart();
        await until("Synchronize after the restart", () => syncs(statuses) === 2);
        const phases = statuses.map((s) => s.phase);
        assert.ok(phases.indexOf("disconnected") > 0, "the restart was noticed");
        assert.deepEqual(
          phases.slice(phases.lastIndexOf("registering")),
          ["registering", "configured", "synchronized"],
        );
        assert.equal(seen.filter((s) => s.hook === "sync").length, 2);
      });
      const log = await Deno.readTextFile(ctd.logPath);
      // containerd's own view: connected and synchronized twice, never dropped.
      assert.equal(log.match(/plugin \\"10-hydra\\" connected and synchronized/g)?.length, 2);
      assert.doesNotMatch(
        log,
        /split sync|invalid plugin events|failed to (configure|synchronize) plugin/,
      );
    });
  },
});

Deno.test({
  name:
    "containerd: Configure, Synchronize with existing pods, Run/Stop/RemovePodSandbox with netns, reconnect after restart",
  async fn() {
    await withContainerd(async ({ ctd, runp }) => {
      const before = await runp(uniqueName("pre"));
      const { hooks, seen } = recorder();
      await withPlugin(ctd, hooks, async (statuses) => {
        await until("first Synchronize", () => syncs(statuses) === 1);
        const sync = seen.find((s) => s.hook === "sync")!;
        assert.equal(sync.runtime.name, "containerd");
        assert.equal(sync.runtime.version, versions().CONTAINERD_VERSION);
        assert.equal(sync.runtime.requestTimeoutMs, 2000);
        assert.equal(sync.runtime.registrationTimeoutMs, 5000);
        assert.match(sync.runtime.nriVersion, /^v0\.12\./);
        const existing = sync.pods!.find((p) => p.id === before);
        assert.ok(existing, "the pod made before hydra connected is synchronized");
        assert.ok(Deno.statSync(netnsPathOf(existing)!).isFile);

        const name = uniqueName("run");
        const id = await runp(name, { "k8s.v1.cni.cncf.io/networks": "blue" });
        const run = seen.find((s) => s.hook === "run" && s.pod!.id === id);
        assert.ok(run, "RunPodSandbox reached the hook before runp returned");
        assert.equal(run.rpc, "RunPodSandbox");
        assert.equal(run.pod!.name, name);
        assert.equal(run.pod!.namespace, "nri-test");
        assert.equal(run.pod!.labels["hydra.test/pod"], name);
        assert.equal(run.pod!.annotations["k8s.v1.cni.cncf.io/networks"], "blue");
        assert.ok(run.netnsExisted, `netns ${netnsPathOf(run.pod!)} existed during RunPodSandbox`);
        assert.ok(run.pod!.pid > 0);
        const inspect = JSON.parse(await ctd.crictl("inspectp", "-o", "json", id));
        assert.deepEqual(run.pod!.ips, [inspect.status.network.ip]);

        await ctd.crictl("stopp", id);
        assert.ok(
          seen.some((s) => s.hook === "stop" && s.pod!.id === id && s.rpc === "StopPodSandbox"),
        );
        await ctd.crictl("rmp", id);
        assert.ok(
          seen.some((s) => s.hook === "remove" && s.pod!.id === id && s.rpc === "RemovePodSandbox"),
        );

        await ctd.restart();
        await until("Synchronize after the restart", () => syncs(statuses) === 2);
        assert.ok(statuses.some((s) => s.phase === "disconnected"));
        const resync = seen.filter((s) => s.hook === "sync")[1];
        assert.ok(resync.pods!.some((p) => p.id === before), "existing pod listed again");
        assert.ok(!resync.pods!.some((p) => p.id === id), "removed pod not listed");
        const after = await runp(uniqueName("aft"));
        assert.ok(seen.some((s) => s.hook === "run" && s.pod!.id === after));
      });
    });
  },
});

Deno.test({
  name:
    "containerd: a hook error or an overrun fails the sandbox and rolls it back, and hydra stays connected",
  async fn() {
    await withContainerd(async ({ ctd, runp }) => {
      const { hooks, seen } = recorder();
      await withPlugin(ctd, hooks, async (statuses) => {
        await until("Synchronize", () => syncs(statuses) === 1);
        await assert.rejects(
          runp(uniqueName("fail"), { "hydra.test/behaviour": "fail" }),
          /refused by the test hook/,
        );
        await assert.rejects(
          runp(uniqueName("hang"), { "hydra.test/behaviour": "hang" }),
          /budget/,
        );
        for (const behaviour of ["fail", "hang"]) {
          const run = seen.find((s) =>
            s.hook === "run" && s.pod!.annotations["hydra.test/behaviour"] === behaviour
          )!;
          // containerd undoes the failed sandbox through the plugins.
          const stop = seen.findIndex((s) => s.hook === "stop" && s.pod!.id === run.pod!.id);
          assert.ok(stop >= 0, `${behaviour}: stop`);
          if (behaviour === "hang") {
            // The overrun run was aborted (and settled) before the rollback's stop ran.
            const aborted = seen.findIndex((s) =>
              s.hook === "aborted" && s.pod!.id === run.pod!.id
            );
            assert.ok(aborted >= 0 && aborted < stop, "hang: aborted before stop");
          }
          assert.ok(
            seen.some((s) => s.hook === "remove" && s.pod!.id === run.pod!.id),
            `${behaviour}: remove`,
          );
        }
        // Neither sandbox came up. (Under load containerd may keep a NotReady
        // record of a sandbox whose rollback it retries later.)
        assert.equal((await ctd.crictl("pods", "--state", "ready", "-q")).trim(), "");
        // Still the same connection: an error answer does not get the plugin dropped.
        assert.ok(!statuses.some((s) => s.phase === "disconnected"));
        const ok = await runp(uniqueName("ok"));
        assert.ok(seen.some((s) => s.hook === "run" && s.pod!.id === ok));
      }, { budgetMarginMs: 500 });
    });
  },
});

Deno.test({
  name: "containerd: without the v0.12 pod RPCs, events arrive as StateChange",
  async fn() {
    await withContainerd(async ({ ctd, runp }) => {
      const { hooks, seen } = recorder();
      await withPlugin(ctd, hooks, async (statuses) => {
        await until("Synchronize", () => syncs(statuses) === 1);
        const id = await runp(uniqueName("legacy"));
        await ctd.crictl("stopp", id);
        await ctd.crictl("rmp", id);
        const mine = seen.filter((s) => s.pod?.id === id);
        assert.deepEqual(mine.map((s) => `${s.hook}:${s.rpc}`), [
          "run:StateChange",
          "stop:StateChange",
          "remove:StateChange",
        ]);
        assert.ok(mine[0].netnsExisted);
      }, { podSandboxRpcs: false });
    });
  },
});

Deno.test({
  name:
    "containerd: Synchronize is answered OK when its hook overruns or fails, and pods keep reaching hydra",
  async fn() {
    await withContainerd(async ({ ctd, runp }) => {
      const { hooks, seen } = recorder();
      let release!: () => void;
      const released = new Promise<void>((resolve) => release = resolve);
      let syncSignal: AbortSignal | undefined;
      let passes = 0;
      hooks.onSynchronize = (_pods, ctx) => {
        passes++;
        syncSignal = ctx.signal;
        // First pass: outlives the 2 s request budget; second: fails.
        return passes === 1 ? released : Promise.reject(new Error("cannot list attachments"));
      };
      await withPlugin(ctd, hooks, async (statuses) => {
        await until("Synchronize answered despite the hanging hook", () => syncs(statuses) === 1);
        assert.equal(syncSignal?.aborted, false, "the sync work is not cut short by its budget");
        const first = await runp(uniqueName("dur"));
        assert.ok(seen.some((s) => s.hook === "run" && s.pod!.id === first));
        release();
        await ctd.restart();
        await until("Synchronize after the restart (hook fails)", () => syncs(statuses) === 2);
        const second = await runp(uniqueName("aft"));
        assert.ok(seen.some((s) => s.hook === "run" && s.pod!.id === second));
      });
      const log = await Deno.readTextFile(ctd.logPath);
      assert.equal(log.match(/plugin \\"10-hydra\\" connected and synchronized/g)?.length, 2);
      assert.doesNotMatch(log, /failed to synchronize plugin/);
    });
  },
});

Deno.test({
  name:
    "containerd: a plugin containerd pre-launches serves its inherited socket (NRI_PLUGIN_SOCKET) and exits when containerd dies",
  async fn() {
    await withContainerd(async ({ ctd, tmp, runp }) => {
      // containerd starts every NN-name executable of its plugin folder at start-up,
      // with only NRI_PLUGIN_NAME, NRI_PLUGIN_IDX and NRI_PLUGIN_SOCKET=3 set.
      const out = join(tmp, "prelaunched.jsonl");
      const launcher = join(ctd.dir, "nri", "plugins", "42-prelaunched");
      const plugin = new URL("./prelaunched_plugin.ts", import.meta.url).pathname;
      const config = new URL("../../deno.json", import.meta.url).pathname;
      const denoDir = Deno.env.get("DENO_DIR");
      await Deno.writeTextFile(
        launcher,
        "#!/bin/sh\n" + (denoDir ? `DENO_DIR='${denoDir}' ` : "") +
          `exec '${Deno.execPath()}' run -A --cached-only --config '${config}' '${plugin}' >>'${out}'\n`,
        { mode: 0o755 },
      );
      await ctd.restart();
      const text = () => {
        try {
          return Deno.readTextFileSync(out);
        } catch {
          return "";
        }
      };
      await until("the pre-launched plugin synchronized", () => text().includes('"sync"'));
      const name = uniqueName("pre");
      const id = await runp(name);
      const netns = JSON.parse(await ctd.crictl("inspectp", "-o", "json", id)).info.runtimeSpec
        .linux.namespaces.find((ns: { type: string }) => ns.type === "network").path;
      // containerd kills the plugins it launched when it stops; when it dies
      // instead, the plugin sees its socket close and must exit by itself.
      await Deno.remove(launcher); // not launched again by the restart below
      Deno.kill(ctd.record.pid, "SIGKILL");
      await until("the pre-launched plugin exited", () => text().includes('"exit"'));
      await ctd.restart();
      const records = text().trim().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(records, [
        { hook: "sync", pods: [] },
        { hook: "run", pod: name, netns },
        { hook: "exit" },
      ]);
    });
  },
});
