import assert from "node:assert/strict";
import {
  commentString,
  identifier,
  ifNameString,
  isQuotableIfName,
  NftSyntaxError,
  portText,
  setText,
} from "./syntax.ts";

Deno.test("ifNameString quotes kernel-style names and refuses what could break out", () => {
  assert.equal(ifNameString("net1"), '"net1"');
  assert.equal(ifNameString("eth0.100"), '"eth0.100"');
  for (const bad of ["", 'a"b', "a b", "a/b", "sixteen-chars-xx", "x;drop", "a\nb"]) {
    assert.equal(isQuotableIfName(bad), false, bad);
    assert.throws(() => ifNameString(bad), NftSyntaxError);
  }
});

Deno.test("commentString keeps printable text and defuses quotes", () => {
  assert.equal(commentString("ns/policy ingress 0"), '"ns/policy ingress 0"');
  assert.equal(commentString('a"b\\c\n'), '"a?b?c?"');
  assert.equal(commentString("x".repeat(300)).length, 122);
});

Deno.test("identifier, portText and setText check their input", () => {
  assert.equal(identifier("hydra_policy"), "hydra_policy");
  assert.throws(() => identifier("bad-name;"), NftSyntaxError);
  assert.equal(portText(80), "80");
  assert.equal(portText(80, 90), "80-90");
  assert.throws(() => portText(70000), NftSyntaxError);
  assert.throws(() => portText(90, 80), NftSyntaxError);
  assert.throws(() => portText(1.5), NftSyntaxError);
  assert.equal(setText(["1"]), "1");
  assert.equal(setText(["1", "2"]), "{ 1, 2 }");
  assert.throws(() => setText([]), NftSyntaxError);
});
