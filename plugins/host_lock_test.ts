/**
 * The host lock as another local user and a tampered folder see it: root's
 * own folder (made 0700, a wider one narrowed, another user's refused),
 * 0600 files opened without following symlinks, and a user other than root
 * unable to open, let alone hold, a lock file.
 */

import assert from "node:assert/strict";
import { hostLockPath, withHostLock } from "./host_lock.ts";
import { ensurePrivateDir, PrivateDirError } from "../pkg/private_dir.ts";

const NOBODY = 65534;
const root = Deno.uid() === 0;

/** Runs `fn` with a fresh scratch folder (0755, as /run is), removed afterwards. */
async function scratch(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-lock-" });
  await Deno.chmod(dir, 0o755);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Captures what the lock logs on stderr while `fn` runs. */
async function stderrOf(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return lines;
}

/** Runs `flock -n path true` as user nobody; returns its exit code and stderr. */
async function flockAsNobody(path: string): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      "--clear-groups",
      "flock",
      "-n",
      path,
      "true",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a missing lock folder is made 0700 and its files 0600", async () => {
  await scratch(async (base) => {
    const dir = `${base}/run-hydra/locks`;
    let entered = false;
    const logged = await stderrOf(() =>
      withHostLock("bridge-br0", () => Promise.resolve(entered = true), dir)
    );
    assert.ok(entered);
    assert.deepEqual(logged, []);
    assert.equal(Deno.statSync(`${base}/run-hydra`).mode! & 0o777, 0o700);
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o700);
    assert.equal(Deno.statSync(hostLockPath("bridge-br0", dir)).mode! & 0o777, 0o600);
  });
});

Deno.test("a lock folder left 0755 by an older version is narrowed to 0700", async () => {
  await scratch((base) => {
    const dir = `${base}/locks`;
    Deno.mkdirSync(dir, { mode: 0o755 });
    Deno.chmodSync(dir, 0o755);
    assert.equal(ensurePrivateDir(dir), "fixed");
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o700);
    assert.equal(ensurePrivateDir(dir), "ok");
    return Promise.resolve();
  });
});

Deno.test({
  name: "a lock folder another user owns is refused, and the ADD's work still runs",
  ignore: !root,
  async fn() {
    await scratch(async (base) => {
      const dir = `${base}/locks`;
      Deno.mkdirSync(dir, { mode: 0o700 });
      Deno.chownSync(dir, NOBODY, NOBODY);
      assert.throws(
        () => ensurePrivateDir(dir),
        (err: unknown) =>
          err instanceof PrivateDirError && /owned by uid 65534, not 0; refusing/.test(err.message),
      );
      let entered = false;
      const logged = await stderrOf(() =>
        withHostLock("bridge-br0", () => Promise.resolve(entered = true), dir)
      );
      assert.ok(entered, "the plugin works without the lock");
      assert.equal(logged.length, 1);
      assert.match(logged[0], /running without the bridge-br0 lock.*owned by uid 65534/);
      // Nothing was made in the untrusted folder.
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    });
  },
});

Deno.test("a symlinked lock folder or lock file is never followed", async () => {
  await scratch(async (base) => {
    const target = `${base}/elsewhere`;
    Deno.mkdirSync(target, { mode: 0o700 });
    Deno.symlinkSync(target, `${base}/linked`);
    assert.throws(() => ensurePrivateDir(`${base}/linked`), /is a symbolic link/);

    const dir = `${base}/locks`;
    Deno.mkdirSync(dir, { mode: 0o700 });
    Deno.symlinkSync(`${target}/victim`, hostLockPath("bridge-br0", dir));
    let entered = false;
    const logged = await stderrOf(() =>
      withHostLock("bridge-br0", () => Promise.resolve(entered = true), dir)
    );
    assert.ok(entered);
    assert.match(logged.join("\n"), /running without the bridge-br0 lock/);
    assert.throws(() => Deno.lstatSync(`${target}/victim`), Deno.errors.NotFound);
  });
});

Deno.test("a lock name is one path component whatever it holds", () => {
  assert.equal(hostLockPath("bridge-../../etc/x", "/d"), "/d/bridge-..%2F..%2Fetc%2Fx.flock");
});

Deno.test("holders of one lock take turns; other locks do not wait", async () => {
  await scratch(async (dir) => {
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    const order: string[] = [];
    const first = withHostLock("bridge-a", async () => {
      order.push("first in");
      await held;
      order.push("first out");
    }, dir);
    await new Promise((r) => setTimeout(r, 20));
    const second = withHostLock("bridge-a", () => Promise.resolve(order.push("second")), dir);
    await withHostLock("bridge-b", () => Promise.resolve(order.push("other")), dir);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(order, ["first in", "other"]);
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ["first in", "other", "first out", "second"]);
  });
});

Deno.test({
  name: "another local user can neither open nor hold a lock file",
  ignore: !root,
  async fn() {
    await scratch(async (base) => {
      const dir = `${base}/locks`;
      await withHostLock("bridge-br0", () => Promise.resolve(), dir);
      const path = hostLockPath("bridge-br0", dir);
      const out = await flockAsNobody(path);
      assert.notEqual(out.code, 0);
      assert.match(out.stderr, /Permission denied/);
      // Even with the folder opened up, the file itself is root's alone.
      Deno.chmodSync(dir, 0o755);
      const file = await flockAsNobody(path);
      assert.notEqual(file.code, 0);
      assert.match(file.stderr, /Permission denied/);
    });
  },
});
