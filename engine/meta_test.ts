/**
 * The meta-CNI against fake delegate plugins, driven in-process exactly as
 * an exec would drive it (kernel tests with real plugins are in tests/meta/).
 */

import assert from "node:assert/strict";
import {
  clearCalls,
  failNext,
  type FakeCall,
  makeFakePlugins,
  readCalls,
} from "../tests/cni/fakes.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import { writeScript } from "../tests/cni/helpers.ts";
import { invokeInProcess } from "../cni/skel.ts";
import { plugin } from "./meta.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

interface Ctx {
  dir: string;
  cacheDir: string;
  netns: string;
  run(
    command: string,
    conf: Record<string, unknown>,
    containerId?: string,
    extraEnv?: Record<string, string>,
  ): Promise<
    { code: number; json: Record<string, unknown> | undefined }
  >;
  conf(extra?: Record<string, unknown>): Record<string, unknown>;
}

async function withMeta(fn: (ctx: Ctx) => Promise<void>) {
  await withTempDir(async (dir) => {
    await makeFakePlugins(dir, ["alpha", "beta", "gamma"]);
    const cacheDir = `${dir}/cache`;
    const netns = `${dir}/netns`;
    await Deno.writeTextFile(netns, "");
    const ctx: Ctx = {
      dir,
      cacheDir,
      netns,
      conf: (extra = {}) => ({
        cniVersion: "1.0.0",
        name: "pods",
        type: "hydra",
        cacheDir,
        delegates: [
          { name: "default", type: "alpha" },
          { cniVersion: "0.4.0", name: "second", plugins: [{ type: "beta" }, { type: "gamma" }] },
          { cniVersion: "1.1.0", name: "third", type: "gamma", ifname: "data0" },
        ],
        ...extra,
      }),
      run: async (command, conf, containerId = "ctr1", extraEnv = {}) => {
        const out = await invokeInProcess(plugin, {
          CNI_COMMAND: command,
          CNI_CONTAINERID: containerId,
          CNI_NETNS: netns,
          CNI_IFNAME: "eth0",
          CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
          CNI_PATH: dir,
          ...extraEnv,
        }, enc(conf));
        return { code: out.code, json: out.stdout ? JSON.parse(out.stdout) : undefined };
      },
    };
    await fn(ctx);
  });
}

/**
 * The calls of each interface, "type COMMAND", in the order they ran: a
 * DEL runs each network's list in order but the networks side by side.
 */
function perInterface(calls: FakeCall[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of calls) (out[c.ifName] ??= []).push(`${c.type} ${c.command}`);
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function files(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("ADD attaches every delegate in order and returns the default's result in hydra's version", async () => {
  await withMeta(async (ctx) => {
    const { code, json } = await ctx.run("ADD", ctx.conf({ cniVersion: "0.3.1" }));
    assert.equal(code, 0, JSON.stringify(json));
    assert.deepEqual(json, {
      cniVersion: "0.3.1",
      interfaces: [{ name: "alpha-if", sandbox: ctx.netns }],
      ips: [{ version: "4", interface: 0, address: "10.0.0.1/24" }],
    });
    const calls = await readCalls(ctx.dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command} ${c.ifName}`), [
      "alpha ADD eth0",
      "beta ADD net1",
      "gamma ADD net1",
      "gamma ADD data0",
    ]);
    // A delegate without a version takes hydra's; others keep theirs.
    assert.deepEqual(calls.map((c) => c.stdin.cniVersion), ["0.3.1", "0.4.0", "0.4.0", "1.1.0"]);
    assert.deepEqual(calls.map((c) => c.stdin.name), ["default", "second", "second", "third"]);
    assert.equal(calls[3].stdin.ifname, undefined, "hydra's ifname key is not passed on");
    assert.ok(
      calls.every((c) => c.containerId === "ctr1" && c.args === "IgnoreUnknown=1;K8S_POD_NAME=web"),
    );
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), [
      "default-ctr1-eth0",
      "second-ctr1-net1",
      "third-ctr1-data0",
    ]);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), ["ctr1-eth0"]);
  });
});

Deno.test("ADD failing in a later delegate removes what the earlier ones made", async () => {
  await withMeta(async (ctx) => {
    await failNext(ctx.dir, "gamma", "ADD", 11);
    const { code, json } = await ctx.run("ADD", ctx.conf());
    assert.equal(code, 1);
    assert.equal(json?.code, 11);
    assert.match(
      String(json?.msg),
      /error adding network "second" \(interface net1\): plugin type="gamma" failed \(add\)/,
    );
    const calls = await readCalls(ctx.dir);
    assert.deepEqual(calls.slice(0, 3).map((c) => `${c.type} ${c.command} ${c.ifName}`), [
      "alpha ADD eth0",
      "beta ADD net1",
      "gamma ADD net1",
    ]);
    assert.deepEqual(perInterface(calls.slice(3)), {
      net1: ["gamma DEL", "beta DEL"],
      eth0: ["alpha DEL"],
    });
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), []);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
  });
});

Deno.test("DEL runs each recorded network's list in reverse, even after the config changed", async () => {
  await withMeta(async (ctx) => {
    assert.equal((await ctx.run("ADD", ctx.conf())).code, 0);
    await clearCalls(ctx.dir);
    const changed = ctx.conf({ delegates: [{ name: "other", type: "beta" }] });
    const del = await ctx.run("DEL", changed);
    assert.deepEqual(del, { code: 0, json: undefined });
    const calls = await readCalls(ctx.dir);
    assert.deepEqual(perInterface(calls), {
      data0: ["gamma DEL"],
      net1: ["gamma DEL", "beta DEL"],
      eth0: ["alpha DEL"],
    });
    // The delegates get their cached ADD result as prevResult.
    const alpha = calls.find((c) => c.type === "alpha")!;
    assert.equal((alpha.stdin.prevResult as { cniVersion: string }).cniVersion, "1.0.0");
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), []);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
    // Again: nothing is recorded, nothing to do, success.
    await clearCalls(ctx.dir);
    assert.deepEqual(await ctx.run("DEL", ctx.conf()), { code: 0, json: undefined });
    assert.deepEqual(await readCalls(ctx.dir), []);
  });
});

Deno.test("DEL carries on past a failing delegate and keeps the record for a retry", async () => {
  await withMeta(async (ctx) => {
    await ctx.run("ADD", ctx.conf());
    await clearCalls(ctx.dir);
    await failNext(ctx.dir, "beta", "DEL", 5);
    const { code, json } = await ctx.run("DEL", ctx.conf());
    assert.equal(code, 1);
    assert.equal(json?.code, 5);
    assert.deepEqual(perInterface(await readCalls(ctx.dir)), {
      data0: ["gamma DEL"],
      net1: ["gamma DEL", "beta DEL"],
      eth0: ["alpha DEL"],
    });
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), ["ctr1-eth0"]);
    await Deno.remove(`${ctx.dir}/fail-beta-DEL`);
    await clearCalls(ctx.dir);
    assert.equal((await ctx.run("DEL", ctx.conf())).code, 0);
    // The retry redoes only what failed: the "second" network's list.
    assert.deepEqual((await readCalls(ctx.dir)).map((c) => `${c.type} ${c.command}`), [
      "gamma DEL",
      "beta DEL",
    ]);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), []);
  });
});

Deno.test("DEL reports failures in reverse order of the networks, whichever failed first", async () => {
  await withMeta(async (ctx) => {
    await ctx.run("ADD", ctx.conf());
    await failNext(ctx.dir, "alpha", "DEL", 5);
    await failNext(ctx.dir, "beta", "DEL", 6);
    for (let i = 0; i < 3; i++) {
      const { code, json } = await ctx.run("DEL", ctx.conf());
      assert.equal(code, 1);
      assert.equal(json?.code, 6, "the later network's error leads");
      const msg = String(json?.msg);
      assert.ok(msg.indexOf('"second"') < msg.indexOf('"default"'), msg);
    }
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), ["ctr1-eth0"]);
  });
});

Deno.test("DEL runs the networks side by side", async () => {
  await withMeta(async (ctx) => {
    // Each DEL waits until all three have started: run one after the other, the first gives up.
    await writeScript(
      `${ctx.dir}/waiter`,
      `if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0"}'; exit 0; fi
: > ${ctx.dir}/started-$CNI_IFNAME
i=0
while [ "$(ls ${ctx.dir} | grep -c '^started-')" -lt 3 ]; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then echo '{"code":11,"msg":"the other networks did not start"}'; exit 1; fi
  sleep 0.05
done`,
    );
    const conf = ctx.conf({
      delegates: ["a", "b", "c"].map((n, i) => ({
        name: n,
        type: "waiter",
        ...(i ? { ifname: `if-${n}` } : {}),
      })),
    });
    const add = await ctx.run("ADD", conf);
    assert.equal(add.code, 0, JSON.stringify(add.json));
    assert.deepEqual(await ctx.run("DEL", conf), { code: 0, json: undefined });
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
  });
});

Deno.test("a rollback ignores a failing DEL of the delegate whose ADD failed", async () => {
  await withMeta(async (ctx) => {
    await failNext(ctx.dir, "beta", "ADD");
    await failNext(ctx.dir, "beta", "DEL");
    const { json } = await ctx.run("ADD", ctx.conf());
    assert.equal(json?.code, 42);
    const calls = await readCalls(ctx.dir);
    assert.deepEqual(calls.slice(0, 2).map((c) => `${c.type} ${c.command}`), [
      "alpha ADD",
      "beta ADD",
    ]);
    assert.deepEqual(perInterface(calls.slice(2)), {
      net1: ["gamma DEL", "beta DEL"],
      eth0: ["alpha DEL"],
    });
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
    // A failing DEL of a delegate that had been added is kept for the runtime's DEL.
    await Deno.remove(`${ctx.dir}/fail-beta-DEL`);
    await failNext(ctx.dir, "alpha", "DEL");
    await clearCalls(ctx.dir);
    assert.equal((await ctx.run("ADD", ctx.conf())).code, 1);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), ["ctr1-eth0"]);
    await Deno.remove(`${ctx.dir}/fail-alpha-DEL`);
    await clearCalls(ctx.dir);
    assert.equal((await ctx.run("DEL", ctx.conf())).code, 0);
    assert.deepEqual((await readCalls(ctx.dir)).map((c) => `${c.type} ${c.command}`), [
      "alpha DEL",
    ]);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
  });
});

Deno.test("CHECK checks every recorded delegate; with no record it is code 3", async () => {
  await withMeta(async (ctx) => {
    const none = await ctx.run("CHECK", ctx.conf());
    assert.equal(none.json?.code, 3);
    await ctx.run("ADD", ctx.conf());
    await clearCalls(ctx.dir);
    assert.deepEqual(await ctx.run("CHECK", ctx.conf()), { code: 0, json: undefined });
    assert.deepEqual((await readCalls(ctx.dir)).map((c) => `${c.type} ${c.command} ${c.ifName}`), [
      "alpha CHECK eth0",
      "beta CHECK net1",
      "gamma CHECK net1",
      "gamma CHECK data0",
    ]);
    await failNext(ctx.dir, "gamma", "CHECK", 100);
    const failed = await ctx.run("CHECK", ctx.conf());
    assert.equal(failed.json?.code, 100);
    assert.match(String(failed.json?.msg), /checking network "second"/);
  });
});

Deno.test("STATUS asks every delegate of >= 1.1.0 and returns the first failure", async () => {
  await withMeta(async (ctx) => {
    const conf = ctx.conf({ cniVersion: "1.1.0" });
    assert.equal((await ctx.run("STATUS", conf)).code, 0);
    // "second" is 0.4.0: STATUS is not sent to it.
    assert.deepEqual((await readCalls(ctx.dir)).map((c) => `${c.type} ${c.command}`), [
      "alpha STATUS",
      "gamma STATUS",
    ]);
    await failNext(ctx.dir, "alpha", "STATUS", 50);
    assert.equal((await ctx.run("STATUS", conf)).json?.code, 50);
  });
});

Deno.test("GC removes stale containers' attachments and passes the still-valid ones to delegates", async () => {
  await withMeta(async (ctx) => {
    const conf = ctx.conf({ cniVersion: "1.1.0" });
    await ctx.run("ADD", conf, "keep");
    await ctx.run("ADD", conf, "stale");
    await clearCalls(ctx.dir);
    const gc = await ctx.run("GC", {
      ...conf,
      "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
    });
    assert.deepEqual(gc, { code: 0, json: undefined });
    const calls = await readCalls(ctx.dir);
    const dels = calls.filter((c) => c.command === "DEL");
    assert.ok(dels.every((c) => c.containerId === "stale"));
    assert.deepEqual(perInterface(dels), {
      data0: ["gamma DEL"],
      net1: ["gamma DEL", "beta DEL"],
      eth0: ["alpha DEL"],
    });
    const gcCalls = calls.filter((c) => c.command === "GC");
    assert.deepEqual(gcCalls.map((c) => [c.stdin.name, c.stdin["cni.dev/valid-attachments"]]), [
      ["default", [{ containerID: "keep", ifname: "eth0" }]],
      ["third", [{ containerID: "keep", ifname: "data0" }]],
    ]);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), ["keep-eth0"]);
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), [
      "default-keep-eth0",
      "second-keep-net1",
      "third-keep-data0",
    ]);
  });
});

Deno.test("delegates from a conf folder: lexical order, hydra's own file skipped, ifname from the file", async () => {
  await withMeta(async (ctx) => {
    const confDir = `${ctx.dir}/net.d`;
    await Deno.mkdir(confDir);
    await Deno.writeTextFile(
      `${confDir}/00-hydra.conf`,
      JSON.stringify({ name: "pods", type: "hydra" }),
    );
    await Deno.writeTextFile(
      `${confDir}/10-main.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "main", plugins: [{ type: "alpha" }] }),
    );
    await Deno.writeTextFile(
      `${confDir}/30-extra.conf`,
      JSON.stringify({ name: "extra", type: "gamma", ifname: "ext0" }),
    );
    await Deno.writeTextFile(
      `${confDir}/20-mid.json`,
      JSON.stringify({ cniVersion: "0.4.0", name: "mid", type: "beta" }),
    );
    const conf = {
      cniVersion: "1.0.0",
      name: "pods",
      type: "hydra",
      cacheDir: ctx.cacheDir,
      delegatesFromConfDir: confDir,
    };
    const { code, json } = await ctx.run("ADD", conf);
    assert.equal(code, 0, JSON.stringify(json));
    assert.deepEqual(
      (await readCalls(ctx.dir)).map((c) => `${c.stdin.name} ${c.ifName} ${c.stdin.cniVersion}`),
      [
        "main eth0 1.0.0",
        "mid net1 0.4.0",
        "extra ext0 1.0.0",
      ],
    );
    assert.equal((await ctx.run("DEL", conf)).code, 0);
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), []);
  });
});

Deno.test("binDir is searched first and put in front of CNI_PATH for the delegates", async () => {
  await withMeta(async (ctx) => {
    const conf = ctx.conf({ binDir: ctx.dir, delegates: [{ name: "default", type: "alpha" }] });
    const { code } = await ctx.run("ADD", conf, "ctr1", { CNI_PATH: "/nonexistent" });
    assert.equal(code, 0);
    assert.equal((await readCalls(ctx.dir))[0].path, `${ctx.dir}:/nonexistent`);
  });
});

Deno.test("capability arguments go to the default delegate only, for the capabilities it declares", async () => {
  await withMeta(async (ctx) => {
    const conf = ctx.conf({
      runtimeConfig: {
        portMappings: [{ hostPort: 80, containerPort: 8080 }],
        mac: "aa:bb:cc:dd:ee:ff",
      },
      delegates: [
        { name: "default", type: "alpha", capabilities: { portMappings: true } },
        { name: "second", type: "beta", capabilities: { portMappings: true } },
      ],
    });
    assert.equal((await ctx.run("ADD", conf)).code, 0);
    const calls = await readCalls(ctx.dir);
    assert.deepEqual(calls[0].stdin.runtimeConfig, {
      portMappings: [{ hostPort: 80, containerPort: 8080 }],
    });
    assert.equal(calls[0].stdin.capabilities, undefined);
    assert.equal(calls[1].stdin.runtimeConfig, undefined);
  });
});

Deno.test("bad hydra configs fail with a clear code and touch nothing", async () => {
  await withMeta(async (ctx) => {
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [ctx.conf({ delegates: undefined }), 7, /missing "delegates"/],
      [ctx.conf({ delegates: [] }), 7, /"delegates" is empty/],
      [ctx.conf({ delegates: {} }), 6, /"delegates" must be a list/],
      [
        ctx.conf({ delegatesFromConfDir: "/etc/cni/net.d" }),
        7,
        /either "delegates" or "delegatesFromConfDir"/,
      ],
      [
        ctx.conf({ delegates: [{ name: "a", type: "alpha" }, { name: "b" }] }),
        7,
        /delegates\[1\]: missing 'type'/,
      ],
      [
        ctx.conf({ delegates: [{ name: "a", type: "alpha" }, { name: "b", type: "../x" }] }),
        7,
        /delegates\[1\]: "type"/,
      ],
      [ctx.conf({ delegates: [{ name: "a", type: "hydra" }] }), 7, /cannot be hydra itself/],
      [
        ctx.conf({ delegates: [{ name: "a", type: "alpha", ifname: "x0" }] }),
        7,
        /always gets CNI_IFNAME/,
      ],
      [
        ctx.conf({
          delegates: [{ name: "a", type: "alpha" }, { name: "b", type: "beta", ifname: "eth0" }],
        }),
        7,
        /"eth0" is already used/,
      ],
      [
        ctx.conf({
          delegates: [{ name: "a", type: "alpha" }, {
            name: "b",
            type: "beta",
            ifname: "way-too-long-name",
          }],
        }),
        7,
        /delegates\[1\]\.ifname/,
      ],
      [
        ctx.conf({
          delegates: [{ name: "a", type: "alpha" }, { name: "b", type: "beta", ifname: 3 }],
        }),
        6,
        /ifname/,
      ],
      [ctx.conf({ delegates: [{ name: "a b", type: "alpha" }] }), 7, /network name "a b"/],
      [
        ctx.conf({ delegates: [{ cniVersion: "9.9.9", name: "a", type: "alpha" }] }),
        1,
        /unsupported cniVersion/,
      ],
      [ctx.conf({ logLevel: "chatty" }), 7, /"logLevel"/],
      [ctx.conf({ cacheDir: "relative/dir" }), 7, /"cacheDir" must be an absolute path/],
      [ctx.conf({ delegateTimeout: "60" }), 6, /delegateTimeout/],
      [ctx.conf({ delegateTimeout: 0 }), 7, /delegateTimeout/],
      [
        ctx.conf({ delegatesFromConfDir: `${ctx.dir}/empty`, delegates: undefined }),
        7,
        /no network configurations found/,
      ],
      [
        ctx.conf({ delegates: [{ name: "a", type: "missing-plugin" }] }),
        7,
        /failed to find plugin "missing-plugin"/,
      ],
    ];
    for (const [conf, code, re] of cases) {
      const { code: exit, json } = await ctx.run("ADD", conf);
      assert.equal(exit, 1);
      assert.equal(json?.code, code, `${JSON.stringify(conf)} -> ${JSON.stringify(json)}`);
      assert.match(String(json?.msg), re);
    }
    assert.deepEqual(await readCalls(ctx.dir), []);
    assert.deepEqual(await files(`${ctx.cacheDir}/results`), []);
    assert.deepEqual(await files(`${ctx.cacheDir}/attachments`), []);
  });
});

Deno.test("a log file gets JSON lines about the invocation", async () => {
  await withMeta(async (ctx) => {
    const logFile = `${ctx.dir}/hydra.log`;
    assert.equal((await ctx.run("ADD", ctx.conf({ logFile, logLevel: "info" }))).code, 0);
    const lines = (await Deno.readTextFile(logFile)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.containerId, l.command]), [
      ["info", "delegate added", "ctr1", "ADD"],
      ["info", "delegate added", "ctr1", "ADD"],
      ["info", "delegate added", "ctr1", "ADD"],
    ]);
  });
});
