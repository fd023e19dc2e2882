import assert from "node:assert/strict";
import { formatIpAddr, parseIpAddr } from "../../ipaddr/ip.ts";
import { unclaimedBlocks } from "./grid.ts";

const range = (start: string, end: string) => ({
  name: "p",
  start: parseIpAddr(start)!,
  end: parseIpAddr(end)!,
});

Deno.test("every block of the window once, starting where the node's hash says, skipping existing ones", () => {
  const r = range("10.0.0.1", "10.0.0.254");
  const a = [...unclaimedBlocks("", r, "node-a", new Set())].map(formatIpAddr);
  assert.equal(a.length, 16);
  assert.equal(new Set(a).size, 16);
  assert.ok(
    a.every((ip) =>
      /^10\.0\.0\.(0|16|32|48|64|80|96|112|128|144|160|176|192|208|224|240)$/.test(ip)
    ),
  );
  const b = [...unclaimedBlocks("", r, "node-b", new Set())].map(formatIpAddr);
  assert.notEqual(a[0], b[0], "two nodes start at different blocks");
  const some = [...unclaimedBlocks("", r, "node-a", new Set(["10.0.0.0-28", "10.0.0.16-28"]))];
  assert.equal(some.length, 14);
});

Deno.test("a huge IPv6 window is walked lazily", () => {
  const r = range("fd00::1", "fd00::ffff:ffff:ffff:fffe");
  const it = unclaimedBlocks("net", r, "n", new Set());
  const firstTwo = [it.next().value, it.next().value].map((ip) => formatIpAddr(ip!));
  assert.equal(firstTwo.length, 2);
  assert.match(firstTwo[0], /^fd00::/);
});
