import assert from "node:assert/strict";
import { inVethNetns as inNetns } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addAddr,
  delAddr,
  IFA_F,
  isExists,
  isNotFound,
  listAddrs,
  NetlinkError,
  replaceAddr,
} from "./mod.ts";

// deno-lint-ignore no-explicit-any
type IpAddr = Record<string, any>;

async function ipAddrs(ns: TestNetns, dev: string): Promise<IpAddr[]> {
  const [link] = await ns.ipJson<Array<{ addr_info: IpAddr[] }>>("addr", "show", "dev", dev);
  return link.addr_info;
}

Deno.test(
  "IPv4 address with derived broadcast, and one with an explicit broadcast",
  inNetns(async (h, ns) => {
    addAddr(h, "va", "10.1.0.5/24", { broadcast: true });
    addAddr(h, "va", "10.2.0.5/16", { broadcast: "10.2.255.254" });
    addAddr(h, "va", "10.3.0.5/24");
    const ip = await ipAddrs(ns, "va");
    const v4 = ip.filter((a) => a.family === "inet");
    assert.deepEqual(
      v4.map((a) => [a.local, a.prefixlen, a.broadcast]),
      [["10.1.0.5", 24, "10.1.0.255"], ["10.2.0.5", 16, "10.2.255.254"], [
        "10.3.0.5",
        24,
        undefined,
      ]],
    );
    const mine = listAddrs(h, { link: "va", family: 4 });
    assert.deepEqual(mine.map((a) => a.cidr), ["10.1.0.5/24", "10.2.0.5/16", "10.3.0.5/24"]);
    assert.equal(mine[0].broadcast, "10.1.0.255");
    assert.equal(mine[0].family, 4);
    assert.equal(mine[0].scope, 0);
    assert.equal(mine[0].label, "va");
  }),
);

Deno.test(
  "IPv6 address with nodad is usable at once (not tentative)",
  inNetns(async (h, ns) => {
    addAddr(h, "va", "fd00::5/64", { nodad: true });
    const a = (await ipAddrs(ns, "va")).find((x) => x.local === "fd00::5")!;
    assert.equal(a.prefixlen, 64);
    assert.equal(a.tentative, undefined);
    const mine = listAddrs(h, { link: "va", family: 6 }).find((x) => x.address === "fd00::5")!;
    assert.ok(mine.flags & IFA_F.NODAD);
    assert.equal(mine.flags & IFA_F.TENTATIVE, 0);
  }),
);

Deno.test(
  "list filters by link and family",
  inNetns((h) => {
    addAddr(h, "va", "10.1.0.5/24");
    addAddr(h, "vb", "10.1.0.6/24");
    addAddr(h, "vb", "fd00::6/64", { nodad: true });
    assert.deepEqual(listAddrs(h, { link: "vb", family: 4 }).map((a) => a.cidr), ["10.1.0.6/24"]);
    assert.ok(listAddrs(h, { link: "vb", family: 6 }).some((a) => a.cidr === "fd00::6/64"));
    assert.ok(listAddrs(h, { family: 4 }).some((a) => a.cidr === "127.0.0.1/8"));
    assert.ok(listAddrs(h).every((a) => a.family === 4 || a.family === 6));
  }),
);

Deno.test(
  "delete, and replace updates lifetimes of an existing address",
  inNetns(async (h, ns) => {
    addAddr(h, "va", "10.1.0.5/24");
    delAddr(h, "va", "10.1.0.5/24");
    assert.equal((await ipAddrs(ns, "va")).filter((a) => a.family === "inet").length, 0);
    replaceAddr(h, "va", "10.1.0.7/24", { validLft: 600, preferredLft: 300 });
    const a = (await ipAddrs(ns, "va")).find((x) => x.local === "10.1.0.7")!;
    assert.ok(a.valid_life_time <= 600 && a.valid_life_time > 500);
    replaceAddr(h, "va", "10.1.0.7/24");
    const b = (await ipAddrs(ns, "va")).find((x) => x.local === "10.1.0.7")!;
    assert.equal(b.valid_life_time, 4294967295);
  }),
);

Deno.test(
  "errors: EEXIST on duplicate, EADDRNOTAVAIL deleting a missing one, ENODEV for a missing link",
  inNetns((h) => {
    addAddr(h, "va", "10.1.0.5/24");
    assert.throws(() => addAddr(h, "va", "10.1.0.5/24"), (e) => isExists(e));
    addAddr(h, "va", "fd00::5/64", { nodad: true });
    assert.throws(() => addAddr(h, "va", "fd00::5/64", { nodad: true }), (e) => isExists(e));
    assert.throws(
      () => delAddr(h, "va", "10.9.9.9/24"),
      (e) => e instanceof NetlinkError && e.code === "EADDRNOTAVAIL" && isNotFound(e),
    );
    assert.throws(() => addAddr(h, "nosuch0", "10.1.0.5/24"), (e) => isNotFound(e));
    assert.throws(
      () => addAddr(h, 999999, "10.1.0.5/24"),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.throws(() => addAddr(h, "va", "10.1.0.300/24"), TypeError);
  }),
);
