import assert from "node:assert/strict";
import { catchCni } from "../tests/cni/helpers.ts";
import {
  assertVersionSupported,
  compareVersions,
  parseVersion,
  selectVersion,
  versionAnswer,
  versionAtLeast,
} from "./version.ts";
import { SUPPORTED_VERSIONS } from "./types.ts";

Deno.test("parseVersion: empty is 0.1.0, missing parts are 0", () => {
  assert.deepEqual(parseVersion(""), [0, 1, 0]);
  assert.deepEqual(parseVersion("1"), [1, 0, 0]);
  assert.deepEqual(parseVersion("0.4"), [0, 4, 0]);
  assert.deepEqual(parseVersion("1.1.0"), [1, 1, 0]);
});

Deno.test("parseVersion: too many parts or non-numbers are code 1", () => {
  for (const bad of ["1.0.0.0", "x", "1.a", "1..0", "v1.0.0", "-1"]) {
    const err = catchCni(() => parseVersion(bad));
    assert.deepEqual(err.code, 1, bad);
  }
});

Deno.test("compareVersions orders numerically, not lexically", () => {
  assert.deepEqual(compareVersions("0.10.0", "0.9.0") > 0, true);
  assert.deepEqual(compareVersions("1.0.0", "1.0") === 0, true);
  assert.deepEqual(compareVersions("", "0.1.0"), 0);
  assert.deepEqual(versionAtLeast("0.4.0", "0.4.0"), true);
  assert.deepEqual(versionAtLeast("0.3.1", "0.4.0"), false);
});

Deno.test("selectVersion: highest of cniVersion and cniVersions, ignoring future versions", () => {
  assert.deepEqual(selectVersion("0.4.0", undefined), "0.4.0");
  assert.deepEqual(selectVersion(undefined, undefined), "");
  assert.deepEqual(selectVersion("0.3.1", ["1.0.0", "0.4.0"]), "1.0.0");
  assert.deepEqual(selectVersion("1.0.0", ["0.3.1"]), "1.0.0");
  assert.deepEqual(selectVersion(undefined, ["0.4.0", "1.1.0", "2.0.0"]), "1.1.0");
  // Only future versions: cniVersion stays as given (libcni keeps it).
  assert.deepEqual(selectVersion("9.0.0", ["8.0.0"]), "9.0.0");
  const err = catchCni(() => selectVersion(undefined, ["1.0.0", "one"]));
  assert.deepEqual(err.code, 1);
});

Deno.test("assertVersionSupported matches exactly, as libcni's reconciler", () => {
  assertVersionSupported("1.0.0", SUPPORTED_VERSIONS);
  assertVersionSupported("", ["0.1.0"]);
  const err = catchCni(() => assertVersionSupported("1.0", SUPPORTED_VERSIONS));
  assert.deepEqual(err.code, 1);
  assert.deepEqual(err.message, "incompatible CNI versions");
  assert.deepEqual(err.details?.includes('config is "1.0"'), true);
});

Deno.test("versionAnswer echoes a known requested version, else reports 1.1.0", () => {
  assert.deepEqual(versionAnswer("0.3.1", SUPPORTED_VERSIONS), {
    cniVersion: "0.3.1",
    supportedVersions: [...SUPPORTED_VERSIONS],
  });
  assert.deepEqual(versionAnswer("7.0.0", ["1.0.0"]).cniVersion, "1.1.0");
  assert.deepEqual(versionAnswer(undefined, ["1.0.0"]).cniVersion, "1.1.0");
});
