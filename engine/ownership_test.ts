import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { delay } from "../pkg/async.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import { attachmentLockPath, withAttachment } from "./ownership.ts";

Deno.test("one attachment's invocations run one after the other; other attachments do not wait", async () => {
  await withTempDir(async (dir) => {
    const log: string[] = [];
    const step = (name: string, ms: number) => async () => {
      log.push(`${name} start`);
      await delay(ms);
      log.push(`${name} end`);
    };
    await Promise.all([
      withAttachment(dir, "c1", "eth0", "CHECK", undefined, step("a", 50)),
      withAttachment(dir, "c1", "eth0", "CHECK", undefined, step("b", 1)),
      withAttachment(dir, "c2", "eth0", "CHECK", undefined, step("other", 1)),
    ]);
    assert.deepEqual(log, ["a start", "other start", "other end", "a end", "b start", "b end"]);
    // No file is left per attachment.
    assert.deepEqual([...Deno.readDirSync(`${dir}/locks`)], []);
  });
});

Deno.test("a DEL aborts the ADD of its attachment running here and runs once the ADD is done", async () => {
  await withTempDir(async (dir) => {
    const log: string[] = [];
    const add = withAttachment(dir, "c1", "eth0", "ADD", undefined, async (signal) => {
      log.push("add start");
      await delay(10_000, signal);
      log.push(`add stopped: ${(signal?.reason as Error).message}`);
      await delay(20); // its rollback
      log.push("add rolled back");
    });
    await delay(20);
    await withAttachment(dir, "c1", "eth0", "DEL", undefined, () => {
      log.push("del");
      return Promise.resolve();
    });
    await add;
    assert.deepEqual(log, [
      "add start",
      "add stopped: a DEL of the same attachment arrived",
      "add rolled back",
      "del",
    ]);
  });
});

Deno.test("hot plug owns the attachment too: a DEL aborts a PLUG, never an UNPLUG", async () => {
  await withTempDir(async (dir) => {
    const log: string[] = [];
    const plug = withAttachment(dir, "c1", "eth0", "PLUG", undefined, async (signal) => {
      log.push("plug start");
      await delay(10_000, signal);
      log.push(`plug stopped: ${(signal?.reason as Error).message}`);
    });
    await delay(20);
    await withAttachment(dir, "c1", "eth0", "DEL", undefined, () => {
      log.push("del");
      return Promise.resolve();
    });
    await plug;
    const unplug = withAttachment(dir, "c1", "eth0", "UNPLUG", undefined, async (signal) => {
      log.push("unplug start");
      assert.equal(signal, undefined);
      await delay(50);
      log.push("unplug end");
    });
    await delay(20);
    await withAttachment(dir, "c1", "eth0", "DEL", undefined, () => {
      log.push("del");
      return Promise.resolve();
    });
    await unplug;
    assert.deepEqual(log, [
      "plug start",
      "plug stopped: a DEL of the same attachment arrived",
      "del",
      "unplug start",
      "unplug end",
      "del",
    ]);
  });
});

Deno.test("a caller that gives up while waiting for its turn does not run (code 11)", async () => {
  await withTempDir(async (dir) => {
    let ran = false;
    const first = withAttachment(dir, "c1", "eth0", "CHECK", undefined, () => delay(100));
    const gaveUp = new AbortController();
    const second = withAttachment(dir, "c1", "eth0", "ADD", gaveUp.signal, () => {
      ran = true;
      return Promise.resolve();
    });
    gaveUp.abort(new Error("the caller closed its connection"));
    await first;
    await assert.rejects(second, (err) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, ErrorCode.TryAgainLater);
      assert.match(err.message, /cancelled: the caller closed its connection/);
      return true;
    });
    assert.equal(ran, false);
  });
});

Deno.test("another process holding the attachment makes us wait; its kill -9 lets us go", async () => {
  await withTempDir(async (dir) => {
    const module = new URL("./ownership.ts", import.meta.url).href;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { withAttachment } from "${module}";
         await withAttachment(${JSON.stringify(dir)}, "c1", "eth0", "ADD", undefined, async () => {
           console.log("holding");
           await new Promise((r) => setTimeout(r, 60_000));
         });`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /holding/);
    let ran = false;
    const waiting = withAttachment(dir, "c1", "eth0", "DEL", undefined, () => {
      ran = true;
      return Promise.resolve();
    });
    await delay(300);
    assert.equal(ran, false, "the holder in another process comes first");
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    await waiting;
    assert.equal(ran, true);
    await assert.rejects(Deno.stat(attachmentLockPath(dir, "c1", "eth0")), Deno.errors.NotFound);
    assert.equal((Deno.statSync(`${dir}/locks`).mode ?? 0) & 0o777, 0o700);
  });
});
