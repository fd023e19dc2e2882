import assert from "node:assert/strict";
import { confinePath, normalizeAbsolute, PathNotAllowedError } from "./path_policy.ts";

Deno.test("paths are judged after . and .. are resolved, never as written", () => {
  assert.equal(normalizeAbsolute("/var/lib/cni/../../../etc"), "/etc");
  assert.equal(normalizeAbsolute("//var///lib/./cni/"), "/var/lib/cni");
  assert.equal(normalizeAbsolute("/.."), "/");
  assert.equal(normalizeAbsolute("var/lib"), undefined);
  assert.equal(normalizeAbsolute("/var/\0x"), undefined);
});

Deno.test("a path is allowed when it is a root or below one, whole components only", () => {
  const roots = ["/var/lib/cni", "/etc/resolv.conf"];
  assert.equal(confinePath("/var/lib/cni", roots), "/var/lib/cni");
  assert.equal(confinePath("/var/lib/cni/networks/", roots), "/var/lib/cni/networks");
  assert.equal(confinePath("/etc/resolv.conf", roots), "/etc/resolv.conf");
  for (
    const bad of [
      "/var/lib/cni-other",
      "/var/lib",
      "/var/lib/cni/../../../etc/cron.d",
      "/etc/resolv.conf.d/x",
      "relative/dir",
      "",
    ]
  ) {
    assert.throws(() => confinePath(bad, roots), PathNotAllowedError, bad);
  }
  assert.throws(
    () => confinePath("/etc", []),
    (err: unknown) =>
      err instanceof PathNotAllowedError && /allowed roots \(none\)/.test(err.message),
  );
});
