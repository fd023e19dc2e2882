import assert from "node:assert/strict";
import { inVethNetns } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addAddr,
  addRoute,
  delRoute,
  type Handle,
  isExists,
  isNotFound,
  listRoutes,
  lookupRoute,
  NetlinkError,
  replaceRoute,
  RT_SCOPE,
  RT_TABLE,
  RTN,
  RTPROT,
} from "./mod.ts";

// deno-lint-ignore no-explicit-any
type IpRoute = Record<string, any>;

/** The veth pair va/vb, with 10.9.0.1/24 and fd09::1/64 on va. */
function inNetns(fn: (h: Handle, ns: TestNetns) => void | Promise<void>) {
  return inVethNetns(async (h, ns) => {
    addAddr(h, "va", "10.9.0.1/24");
    addAddr(h, "va", "fd09::1/64", { nodad: true });
    await fn(h, ns);
  });
}

Deno.test(
  "route via gateway in a custom table with protocol, metric, src, mtu and advmss",
  inNetns(async (h, ns) => {
    addRoute(h, {
      dst: "10.20.0.0/16",
      gateway: "10.9.0.2",
      oif: "va",
      table: 100,
      protocol: 202,
      priority: 5,
      prefsrc: "10.9.0.1",
      mtu: 1300,
      advmss: 1200,
    });
    const [ip] = await ns.ipJson<IpRoute[]>("-d", "route", "show", "table", "100");
    assert.equal(ip.dst, "10.20.0.0/16");
    assert.equal(ip.gateway, "10.9.0.2");
    assert.equal(ip.dev, "va");
    assert.equal(ip.protocol, "202");
    assert.equal(ip.metric, 5);
    assert.equal(ip.prefsrc, "10.9.0.1");
    assert.deepEqual(ip.metrics, [{ mtu: 1300, advmss: 1200 }]);
    const [r] = listRoutes(h, { table: 100 });
    assert.equal(r.dst, "10.20.0.0/16");
    assert.equal(r.gateway, "10.9.0.2");
    assert.equal(r.table, 100);
    assert.equal(r.protocol, 202);
    assert.equal(r.priority, 5);
    assert.equal(r.prefsrc, "10.9.0.1");
    assert.equal(r.mtu, 1300);
    assert.equal(r.advmss, 1200);
    assert.equal(r.scope, RT_SCOPE.UNIVERSE);
    assert.equal(r.type, RTN.UNICAST);
  }),
);

Deno.test(
  "device route gets link scope and boot protocol by default; tables above 255 work",
  inNetns(async (h, ns) => {
    addRoute(h, { dst: "10.30.0.0/24", oif: "va", table: 1000 });
    const [ip] = await ns.ipJson<IpRoute[]>("-d", "route", "show", "table", "1000");
    assert.equal(ip.scope, "link");
    assert.equal(ip.protocol, "boot");
    const [r] = listRoutes(h, { table: 1000 });
    assert.equal(r.table, 1000);
    assert.equal(r.scope, RT_SCOPE.LINK);
    assert.equal(r.protocol, RTPROT.BOOT);
  }),
);

Deno.test(
  "default routes (v4 and v6), IPv6 route, blackhole and onlink routes",
  inNetns(async (h, ns) => {
    addRoute(h, { dst: "default", gateway: "10.9.0.254" });
    addRoute(h, { dst: "default", gateway: "fd09::fe", oif: "va" });
    addRoute(h, { dst: "fd20::/48", gateway: "fd09::2", priority: 42 });
    addRoute(h, { dst: "10.40.0.0/16", type: RTN.BLACKHOLE });
    addRoute(h, { dst: "10.50.0.0/16", gateway: "192.168.77.1", oif: "va", onlink: true });
    const v4 = await ns.ipJson<IpRoute[]>("route", "show");
    assert.ok(v4.some((r) => r.dst === "default" && r.gateway === "10.9.0.254"));
    assert.ok(v4.some((r) => r.dst === "10.40.0.0/16" && r.type === "blackhole"));
    assert.ok(v4.some((r) => r.dst === "10.50.0.0/16" && r.flags.includes("onlink")));
    const v6 = await ns.ipJson<IpRoute[]>("-6", "route", "show");
    assert.ok(v6.some((r) => r.dst === "default" && r.gateway === "fd09::fe"));
    assert.ok(v6.some((r) => r.dst === "fd20::/48" && r.gateway === "fd09::2" && r.metric === 42));
    const mine = listRoutes(h, { table: RT_TABLE.MAIN });
    assert.ok(mine.some((r) => r.dst === "0.0.0.0/0" && r.gateway === "10.9.0.254"));
    assert.ok(mine.some((r) => r.dst === "::/0" && r.gateway === "fd09::fe" && r.family === 6));
    assert.ok(mine.some((r) => r.dst === "10.40.0.0/16" && r.type === RTN.BLACKHOLE));
    assert.ok(mine.some((r) => r.dst === "10.50.0.0/16" && r.onlink));
    assert.equal(lookupRoute(h, "8.8.8.8").gateway, "10.9.0.254");
    assert.equal(lookupRoute(h, "fd20::1").gateway, "fd09::2");
  }),
);

Deno.test(
  "replace changes the gateway in place; delete removes only the matching route",
  inNetns(async (h, ns) => {
    addRoute(h, { dst: "10.60.0.0/16", gateway: "10.9.0.2", protocol: 202 });
    replaceRoute(h, { dst: "10.60.0.0/16", gateway: "10.9.0.3", protocol: 202 });
    const rs = listRoutes(h, { protocol: 202 });
    assert.deepEqual(rs.map((r) => [r.dst, r.gateway]), [["10.60.0.0/16", "10.9.0.3"]]);
    replaceRoute(h, { dst: "fd60::/64", gateway: "fd09::2", protocol: 202 });
    replaceRoute(h, { dst: "fd60::/64", gateway: "fd09::3", protocol: 202 });
    assert.deepEqual(
      listRoutes(h, { protocol: 202, family: 6 }).map((r) => r.gateway),
      ["fd09::3"],
    );
    delRoute(h, { dst: "10.60.0.0/16" });
    delRoute(h, { dst: "fd60::/64", protocol: 202 });
    assert.deepEqual(await ns.ipJson<IpRoute[]>("route", "show", "proto", "202"), []);
    assert.deepEqual(listRoutes(h, { protocol: 202 }), []);
  }),
);

Deno.test(
  "errors: EEXIST, ESRCH/ENOENT for a missing route, ENODEV, ENETUNREACH",
  inNetns((h) => {
    addRoute(h, { dst: "10.70.0.0/16", gateway: "10.9.0.2" });
    assert.throws(
      () => addRoute(h, { dst: "10.70.0.0/16", gateway: "10.9.0.2" }),
      (e) => isExists(e),
    );
    addRoute(h, { dst: "fd70::/64", gateway: "fd09::2" });
    assert.throws(() => addRoute(h, { dst: "fd70::/64", gateway: "fd09::2" }), (e) => isExists(e));
    assert.throws(
      () => delRoute(h, { dst: "10.71.0.0/16" }),
      (e) => e instanceof NetlinkError && e.code === "ESRCH" && isNotFound(e),
    );
    assert.throws(() => delRoute(h, { dst: "fd71::/64" }), (e) => isNotFound(e));
    assert.throws(
      () => addRoute(h, { dst: "10.72.0.0/16", oif: 999999 }),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.throws(
      () => addRoute(h, { dst: "10.73.0.0/16", gateway: "172.31.0.1" }),
      (e) => e instanceof NetlinkError && e.code === "ENETUNREACH",
    );
    assert.deepEqual(listRoutes(h, { table: 4242 }), []);
  }),
);

Deno.test(
  "1,000-route dump filtered by protocol (multi-part)",
  inNetns(async (h, ns) => {
    for (let i = 0; i < 1000; i++) {
      addRoute(h, {
        dst: `10.${100 + (i >> 8)}.${i & 255}.0/24`,
        gateway: "10.9.0.2",
        protocol: 202,
      });
    }
    for (let i = 0; i < 200; i++) {
      addRoute(h, { dst: `10.200.${i}.0/24`, gateway: "10.9.0.3", protocol: RTPROT.STATIC });
    }
    const mine = listRoutes(h, { protocol: 202 });
    assert.equal(mine.length, 1000);
    assert.ok(mine.every((r) => r.protocol === 202 && r.gateway === "10.9.0.2"));
    assert.equal(new Set(mine.map((r) => r.dst)).size, 1000);
    const ip = await ns.ipJson<IpRoute[]>("route", "show", "proto", "202");
    assert.deepEqual(mine.map((r) => r.dst).sort(), ip.map((r) => r.dst).sort());
    assert.equal(listRoutes(h, { protocol: RTPROT.STATIC }).length, 200);
    assert.ok(listRoutes(h, { family: 4 }).length >= 1200);
    for (const r of mine) delRoute(h, { dst: r.dst, protocol: 202 });
    assert.deepEqual(listRoutes(h, { protocol: 202 }), []);
  }),
);
