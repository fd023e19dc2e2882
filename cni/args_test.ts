import assert from "node:assert/strict";
import { catchCni } from "../tests/cni/helpers.ts";
import { formatCniArgs, loadCniArgs, parseArgBool, parseCniArgs } from "./args.ts";

Deno.test("parseCniArgs splits K=V pairs on ';' and round-trips", () => {
  assert.deepEqual(parseCniArgs(""), []);
  const pairs = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0");
  assert.deepEqual(pairs, [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", "default"],
    ["K8S_POD_NAME", "web-0"],
  ]);
  assert.equal(
    formatCniArgs(pairs),
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
  );
  assert.deepEqual(parseCniArgs("A="), [["A", ""]]);
});

Deno.test("parseCniArgs rejects pairs that do not split into exactly two parts (code 4)", () => {
  for (const bad of ["A", "A=1;", "A=1=2", ";A=1", "A=1;;B=2"]) {
    const err = catchCni(() => parseCniArgs(bad));
    assert.equal(err.code, 4, bad);
    assert.match(err.message, /CNI_ARGS: invalid pair/);
  }
});

Deno.test("loadCniArgs: unknown keys fail unless IgnoreUnknown is true", () => {
  assert.deepEqual(loadCniArgs("IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff", ["IP", "MAC"]), {
    IP: "10.0.0.5",
    MAC: "aa:bb:cc:dd:ee:ff",
  });
  const err = catchCni(() => loadCniArgs("IP=10.0.0.5;FOO=bar", ["IP"]));
  assert.equal(err.code, 4);
  assert.match(err.message, /unknown args \["FOO=bar"\]/);
  for (const flag of ["1", "true", "TRUE", "True"]) {
    assert.deepEqual(loadCniArgs(`IgnoreUnknown=${flag};FOO=bar;IP=1.2.3.4`, ["IP"]), {
      IP: "1.2.3.4",
    });
  }
  assert.equal(catchCni(() => loadCniArgs("IgnoreUnknown=0;FOO=bar", [])).code, 4);
  assert.equal(catchCni(() => loadCniArgs("IgnoreUnknown=maybe", [])).code, 4);
});

Deno.test("parseArgBool accepts 1/0/true/false in any case", () => {
  assert.equal(parseArgBool("1"), true);
  assert.equal(parseArgBool("False"), false);
  assert.equal(parseArgBool("yes"), undefined);
});
