import assert from "node:assert/strict";
import { join } from "node:path";
import { parseIpAddr } from "../ipaddr/ip.ts";
import {
  goTrimSpace,
  lastReservedIp,
  listReservations,
  ownerRecord,
  releaseByOwner,
  reserve,
  withStore,
} from "./store.ts";

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-ipam-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until /proc/locks shows `pid` blocked on a flock of inode `ino`. */
async function waitForBlockedFlock(pid: number, ino: number): Promise<void> {
  const pattern = new RegExp(`-> FLOCK\\s+ADVISORY\\s+WRITE\\s+${pid}\\s+\\S+:${ino}\\s`);
  for (let i = 0; i < 1000; i++) {
    if (pattern.test(await Deno.readTextFile("/proc/locks"))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never waited for the lock`);
}

Deno.test("the store lock is a flock(2) other programs share", async () => {
  await withDataDir(async (dataDir) => {
    await withStore(dataDir, "n", () => Promise.resolve()); // creates dir and lock file
    const lockPath = join(dataDir, "n", "lock");
    const holder = new Deno.Command("flock", {
      args: [lockPath, "sh", "-c", "echo held; cat"],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const out = holder.stdout.getReader();
    try {
      assert.equal(new TextDecoder().decode((await out.read()).value).trim(), "held");
      let entered = false;
      const waiting = withStore(dataDir, "n", () => {
        entered = true;
        return Promise.resolve();
      });
      await waitForBlockedFlock(Deno.pid, (await Deno.stat(lockPath)).ino!);
      assert.equal(entered, false);
      await holder.stdin.close();
      await waiting;
      assert.equal(entered, true);
    } finally {
      await holder.stdin.close().catch(() => {});
      out.releaseLock();
      await holder.stdout.cancel();
      await holder.status;
    }
  });
});

Deno.test("in-process callers queue for the lock one at a time", async () => {
  await withDataDir(async (dataDir) => {
    let inside = 0;
    let most = 0;
    await Promise.all(Array.from({ length: 20 }, () =>
      withStore(dataDir, "n", async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 1));
        inside--;
      })));
    assert.equal(most, 1);
  });
});

Deno.test("a temporary file left by a crash is removed, never read as a reservation", async () => {
  await withDataDir(async (dataDir) => {
    const dir = join(dataDir, "n");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, ".hydra-tmp-10.0.0.2-1-x"), "a\r\neth0");
    await Deno.writeTextFile(join(dir, "10.0.0.3"), "b\r\neth0");
    const found = await withStore(dataDir, "n", listReservations);
    assert.deepEqual(found.map((r) => [r.name, r.containerId, r.ifname]), [[
      "10.0.0.3",
      "b",
      "eth0",
    ]]);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["10.0.0.3", "lock"]);
  });
});

Deno.test("reserve never overwrites an existing reservation", async () => {
  await withDataDir(async (dataDir) => {
    const ip = parseIpAddr("10.0.0.2")!;
    await Deno.mkdir(join(dataDir, "n"));
    await Deno.writeTextFile(join(dataDir, "n", "10.0.0.2"), "first\r\neth0");
    const ok = await withStore(dataDir, "n", (s) => reserve(s, ip, "second", "eth0", 0));
    assert.equal(ok, false);
    assert.equal(await Deno.readTextFile(join(dataDir, "n", "10.0.0.2")), "first\r\neth0");
    assert.equal(await withStore(dataDir, "n", (s) => lastReservedIp(s, 0)), undefined);
  });
});

Deno.test("owners compare as host-local compares them", async () => {
  assert.equal(goTrimSpace("\u0085 id \u00a0\n"), "id");
  assert.equal(ownerRecord("  id\n", "eth0"), "id\r\neth0");
  await withDataDir(async (dataDir) => {
    const dir = join(dataDir, "n");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "10.0.0.2"), "id\r\neth0\n");
    await Deno.writeTextFile(join(dir, "10.0.0.3"), "id\r\nnet1");
    await Deno.writeTextFile(join(dir, "10.0.0.4"), "id");
    const released = await withStore(dataDir, "n", (s) => releaseByOwner(s, "id", "eth0"));
    // The ID-only record is released only when no record names the interface.
    assert.deepEqual(released.map((r) => r.name), ["10.0.0.2"]);
    const again = await withStore(dataDir, "n", (s) => releaseByOwner(s, "id", "eth0"));
    assert.deepEqual(again.map((r) => r.name), ["10.0.0.4"]);
  });
});

Deno.test("a reservation a crash zeroed or cut short is freed, by its next holder or by its DEL", async () => {
  await withDataDir(async (dataDir) => {
    const dir = join(dataDir, "n");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "10.0.0.2"), "\0".repeat(12));
    await Deno.writeTextFile(join(dir, "10.0.0.3"), "chx12");
    await Deno.writeTextFile(join(dir, "10.0.0.4"), "chx1234\r\ne");
    await Deno.writeTextFile(join(dir, "10.0.0.5"), "chx12");
    const found = await withStore(dataDir, "n", listReservations);
    // The zeroed file names no one: gone with the listing.
    assert.deepEqual(found.map((r) => r.name).sort(), ["10.0.0.3", "10.0.0.4", "10.0.0.5"]);
    const held = ["10.0.0.3", "10.0.0.4"].map((a) => parseIpAddr(a)!);
    const released = await withStore(
      dataDir,
      "n",
      (s) => releaseByOwner(s, "chx1234", "eth0", held),
    );
    // Only addresses its result names: 10.0.0.5 may be another container's.
    assert.deepEqual(released.map((r) => r.name).sort(), ["10.0.0.3", "10.0.0.4"]);
    // Another attachment's DEL never takes a beginning that is not its own.
    const other = await withStore(
      dataDir,
      "n",
      (s) => releaseByOwner(s, "chx99", "eth0", [parseIpAddr("10.0.0.5")!]),
    );
    assert.deepEqual(other, []);
  });
});
