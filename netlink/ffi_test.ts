import assert from "node:assert/strict";
import { hasErrno, type NetlinkError } from "./errors.ts";
import { checkRetried, O_RDONLY, openFd } from "./ffi.ts";

/** A call failing with each errno of `errnos` in turn, then returning 7. */
function failing(errnos: number[]) {
  let calls = 0;
  return {
    call: () => (calls++ < errnos.length ? -1 : 7),
    readErrno: () => errnos[calls - 1],
    calls: () => calls,
  };
}

Deno.test("checkRetried: an EAGAIN or EINTR left by the runtime is not believed at once", () => {
  const f = failing([11, 4]);
  assert.equal(checkRetried(f.call, "open x", f.readErrno), 7, "the third attempt's result");
  assert.equal(f.calls(), 3);
});

Deno.test("checkRetried: another errno is thrown on the first failure, with the operation", () => {
  let calls = 0;
  assert.throws(
    () => checkRetried(() => (calls++, -1), "open /var/run/netns/x", () => 2),
    (e) => hasErrno(e, "ENOENT") && (e as NetlinkError).op === "open /var/run/netns/x",
  );
  assert.equal(calls, 1);
});

Deno.test("checkRetried: an EAGAIN that stays is believed after a few attempts", () => {
  let calls = 0;
  assert.throws(
    () => checkRetried(() => (calls++, -1), "setns", () => 11),
    (e) => hasErrno(e, "EAGAIN"),
  );
  assert.equal(calls, 3);
});

Deno.test("openFd: a missing file is ENOENT with its path, also on the first failure of a process", () => {
  const path = `/proc/self/no-such-${crypto.randomUUID()}`;
  assert.throws(
    () => openFd(path, O_RDONLY),
    (e) => hasErrno(e, "ENOENT") && String(e).includes(path),
  );
});
