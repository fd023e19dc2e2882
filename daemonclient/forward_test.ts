import assert from "node:assert/strict";
import { daemonExecTarget, execViaDaemon, standaloneViaDaemon } from "./forward.ts";
import { confDigest } from "./protocol.ts";
import { withTempDir } from "../tests/helpers/netns.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function envOf(vars: Record<string, string>) {
  return (name: string) => vars[name];
}

const DEL_ENV = {
  CNI_COMMAND: "DEL",
  CNI_CONTAINERID: "ctr1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
};

/** What a stub daemon does with each request line. */
type Reply = (req: Record<string, unknown>) => unknown | "close" | "hang";

/** A stand-in for `hydra daemon` on a unix socket; records the requests it got. */
async function withStubDaemon(
  reply: Reply,
  fn: (socket: string, requests: Record<string, unknown>[]) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const socket = `${dir}/daemon.sock`;
    const listener = Deno.listen({ transport: "unix", path: socket });
    const requests: Record<string, unknown>[] = [];
    const conns: Deno.Conn[] = [];
    const serving = (async () => {
      for await (const conn of listener) {
        conns.push(conn);
        const buf = new Uint8Array(64 * 1024);
        let pending = "";
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          pending += new TextDecoder().decode(buf.subarray(0, n));
          const nl = pending.indexOf("\n");
          if (nl < 0) continue;
          const req = JSON.parse(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
          requests.push(req);
          const answer = reply(req);
          if (answer === "hang") continue;
          if (answer === "close") break;
          await conn.write(enc(JSON.stringify(answer) + "\n"));
        }
        try {
          conn.close();
        } catch {
          // closed by the client
        }
      }
    })();
    try {
      await fn(socket, requests);
    } finally {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await serving.catch(() => {});
    }
  });
}

function conf(socket: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "0.4.0",
    name: "pods",
    type: "hydra",
    daemonExec: true,
    daemonSocket: socket,
    ...extra,
  });
}

Deno.test("only ADD, DEL and CHECK of a conf asking for daemonExec are forwarded", () => {
  const yes = enc(conf("/run/x.sock"));
  assert.equal(daemonExecTarget(envOf(DEL_ENV), yes)?.socket, "/run/x.sock");
  assert.equal(daemonExecTarget(envOf({ ...DEL_ENV, CNI_COMMAND: "ADD" }), yes)?.command, "ADD");
  for (const command of ["VERSION", "STATUS", "GC"]) {
    assert.equal(daemonExecTarget(envOf({ ...DEL_ENV, CNI_COMMAND: command }), yes), undefined);
  }
  assert.equal(
    daemonExecTarget(envOf({ ...DEL_ENV, CNI_NETNS_OVERRIDE: "1" }), yes),
    undefined,
    "the override is checked by the plugin path",
  );
  const no = (c: string) => daemonExecTarget(envOf(DEL_ENV), enc(c));
  assert.equal(no(`{"cniVersion":"1.0.0","type":"hydra"}`), undefined);
  assert.equal(no(`{"daemonExec":"true"}`), undefined);
  assert.equal(no(`{"daemonExec":true,"daemonSocket":""}`), undefined);
  assert.equal(no(`[{"daemonExec":true}]`), undefined);
  assert.equal(no(`{"daemonExec":true`), undefined);
  const dflt = daemonExecTarget(envOf(DEL_ENV), enc(`{"daemonExec":true}`));
  assert.equal(dflt?.socket, "/run/hydra/daemon.sock");
  assert.equal(dflt?.timeoutMs, 240_000);
  const timed = daemonExecTarget(envOf(DEL_ENV), enc(`{"daemonExec":true,"daemonExecTimeout":3}`));
  assert.equal(timed?.timeoutMs, 3000);
});

Deno.test("no daemon listening: the invocation is left to the plugin path", async () => {
  await withTempDir(async (dir) => {
    assert.equal(
      await execViaDaemon(envOf(DEL_ENV), enc(conf(`${dir}/nobody.sock`))),
      undefined,
    );
  });
});

Deno.test("the daemon gets the invocation's arguments and which conf it was for, never the conf; its ADD result is printed as it printed it", async () => {
  const result = JSON.stringify({ cniVersion: "0.4.0", ips: [] }, null, 4) + "\n";
  await withStubDaemon(
    () => ({ ok: true, body: { stdout: result, code: 0 } }),
    async (socket, reqs) => {
      const env = {
        ...DEL_ENV,
        CNI_COMMAND: "ADD",
        CNI_NETNS: "/run/netns/p",
        CNI_ARGS: "K8S_POD_NAME=web",
        HOME: "/root",
      };
      const stdin = conf(socket, { runtimeConfig: { mac: "02:00:00:00:00:01" } });
      assert.deepEqual(await execViaDaemon(envOf(env), enc(stdin)), { stdout: result, code: 0 });
      const sent = reqs[0];
      assert.deepEqual(Object.keys(sent).sort(), [
        "cniArgs",
        "command",
        "confDigest",
        "containerId",
        "ifName",
        "netns",
        "network",
        "op",
        "plugin",
        "runtimeConfig",
        "timeoutMs",
      ]);
      assert.deepEqual(
        { ...sent, confDigest: undefined },
        {
          op: "cni",
          command: "ADD",
          containerId: "ctr1",
          netns: "/run/netns/p",
          ifName: "eth0",
          cniArgs: "K8S_POD_NAME=web",
          network: "pods",
          plugin: "hydra",
          confDigest: undefined,
          runtimeConfig: { mac: "02:00:00:00:00:01" },
          timeoutMs: 240_000,
        },
      );
      // The digest names the conf without what the runtime adds per invocation.
      assert.equal(sent.confDigest, await confDigest(JSON.parse(conf(socket))));
      assert.notEqual(sent.confDigest, await confDigest(JSON.parse(conf(socket, { mtu: 9000 }))));
    },
  );
});

Deno.test("DEL and CHECK print nothing on success", async () => {
  await withStubDaemon(() => ({ ok: true, body: { stdout: "", code: 0 } }), async (socket) => {
    assert.deepEqual(await execViaDaemon(envOf(DEL_ENV), enc(conf(socket))), {
      stdout: "",
      code: 0,
    });
    assert.deepEqual(
      await execViaDaemon(envOf({ ...DEL_ENV, CNI_COMMAND: "CHECK" }), enc(conf(socket))),
      { stdout: "", code: 0 },
    );
  });
});

Deno.test("the daemon's failure is this exec's: same error JSON, exit status 1", async () => {
  const failed = JSON.stringify({ cniVersion: "0.4.0", code: 7, msg: "bad", details: "why" });
  await withStubDaemon(() => ({ ok: true, body: { stdout: failed, code: 1 } }), async (socket) => {
    const out = await execViaDaemon(envOf(DEL_ENV), enc(conf(socket)));
    assert.equal(out?.code, 1);
    assert.deepEqual(JSON.parse(out!.stdout), {
      cniVersion: "0.4.0",
      code: 7,
      msg: "bad",
      details: "why",
    });
  });
  // What the daemon printed is read as any plugin's output is (cni/plugin_output.ts).
  await withStubDaemon(
    () => ({ ok: true, body: { stdout: "not json", code: 1 } }),
    async (socket) => {
      const out = await execViaDaemon(envOf(DEL_ENV), enc(conf(socket)));
      assert.equal(out?.code, 1);
      assert.equal(JSON.parse(out!.stdout).code, 999);
      assert.match(
        JSON.parse(out!.stdout).msg,
        /^netplugin failed but error parsing its diagnostic message "not json"$/,
      );
    },
  );
  await withStubDaemon(
    () => ({ ok: true, body: { stdout: "not json", code: 0 } }),
    async (socket) => {
      const add = { ...DEL_ENV, CNI_COMMAND: "ADD", CNI_NETNS: "/run/netns/p" };
      const out = await execViaDaemon(envOf(add), enc(conf(socket)));
      assert.equal(out?.code, 1);
      assert.equal(JSON.parse(out!.stdout).code, 6);
      assert.match(JSON.parse(out!.stdout).msg, /^node daemon printed a result that is not JSON/);
    },
  );
  await withStubDaemon(
    () => ({ ok: true, body: { stdout: "" } }),
    async (socket) => {
      const out = await execViaDaemon(envOf(DEL_ENV), enc(conf(socket)));
      assert.equal(out?.code, 1);
      assert.equal(JSON.parse(out!.stdout).code, 999);
      assert.match(JSON.parse(out!.stdout).msg, /node daemon gave no outcome of the DEL/);
    },
  );
});

Deno.test("a daemon that refuses, breaks off or stalls gives code 11", async () => {
  await withStubDaemon(
    () => ({ ok: false, status: 501, reason: "NotImplemented", message: "no cni requests" }),
    async (socket) => {
      const out = await execViaDaemon(envOf(DEL_ENV), enc(conf(socket)));
      assert.equal(out?.code, 1);
      const json = JSON.parse(out!.stdout);
      assert.equal(json.code, 11);
      assert.equal(json.cniVersion, "0.4.0");
      assert.match(json.msg, /node daemon at .*: no cni requests/);
    },
  );
  await withStubDaemon(() => "close", async (socket) => {
    const out = await execViaDaemon(envOf(DEL_ENV), enc(conf(socket)));
    assert.equal(JSON.parse(out!.stdout).code, 11);
    assert.match(JSON.parse(out!.stdout).msg, /node daemon did not finish the DEL/);
  });
  await withStubDaemon(() => "hang", async (socket) => {
    const out = await execViaDaemon(
      envOf(DEL_ENV),
      enc(conf(socket, { daemonExecTimeout: 0.2 })),
    );
    assert.equal(out?.code, 1);
    assert.equal(JSON.parse(out!.stdout).code, 11);
    assert.match(JSON.parse(out!.stdout).msg, /did not answer within 200 ms/);
  });
});

Deno.test("a daemon that will not run the invocation leaves it to the plugin path", async () => {
  for (const reason of ["ConfNotFound", "ConfMismatch", "Forbidden", "BadRequest"]) {
    await withStubDaemon(
      () => ({ ok: false, status: 409, reason, message: "not this one" }),
      async (socket) => {
        assert.equal(await execViaDaemon(envOf(DEL_ENV), enc(conf(socket))), undefined, reason);
      },
    );
  }
});

Deno.test("a built-in plugin exec'd on its own hands over its ADD and DEL, never a CHECK or a chained ADD", async () => {
  await withStubDaemon(
    () => ({ ok: true, body: { stdout: "", code: 0 } }),
    async (socket, reqs) => {
      const bridge = (extra: Record<string, unknown> = {}) =>
        enc(conf(socket, { type: "hydra-bridge", ...extra }));
      const del = envOf(DEL_ENV);
      assert.deepEqual(await standaloneViaDaemon(del, bridge(), "hydra-bridge"), {
        stdout: "",
        code: 0,
      });
      assert.equal(reqs.at(-1)?.plugin, "hydra-bridge");
      const asked = reqs.length;
      const add = envOf({ ...DEL_ENV, CNI_COMMAND: "ADD" });
      const check = envOf({ ...DEL_ENV, CNI_COMMAND: "CHECK" });
      const prevResult = { cniVersion: "1.0.0", interfaces: [], ips: [] };
      for (
        const [env, stdin, name] of [
          [check, bridge({ prevResult }), "hydra-bridge"],
          [add, bridge({ prevResult }), "hydra-bridge"],
          [add, bridge(), "hydra-macvlan"], // not the conf's type
          [add, bridge({ type: "hydra-tuning" }), "hydra-tuning"], // not a standalone plugin
          [add, bridge({ daemonExec: false }), "hydra-bridge"],
        ] as const
      ) {
        assert.equal(await standaloneViaDaemon(env, stdin, name), undefined);
      }
      assert.equal(reqs.length, asked, "none of those reached the daemon");
    },
  );
});
