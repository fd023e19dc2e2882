import assert from "node:assert/strict";
import { inVethNetns } from "../tests/helpers/netlink.ts";
import { run, type TestNetns } from "../tests/helpers/netns.ts";
import { addAddr, findLink, type Handle, IFF, isNotFound, listRoutes, setLinkUp } from "./mod.ts";
import {
  addNexthop,
  delNexthop,
  listNexthops,
  queueAddNexthop,
  replaceNexthop,
} from "./nexthop.ts";
import { queueRoute } from "./route.ts";
import { createBatch } from "./socket.ts";

/** The veth pair va/vb, with 10.9.0.1/24 on va. */
function inNetns(fn: (h: Handle, ns: TestNetns, va: number) => void | Promise<void>) {
  return inVethNetns(async (h, ns) => {
    addAddr(h, "va", "10.9.0.1/24");
    setLinkUp(h, "vb");
    // A nexthop needs carrier, which a new veth pair gets a moment after it is up.
    for (let i = 0; i < 200 && !(findLink(h, "va")!.flags & IFF.LOWER_UP); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await fn(h, ns, findLink(h, "va")!.index);
  });
}

Deno.test(
  "nexthop objects: add, list by protocol, replace (its routes follow), delete (its routes go)",
  inNetns(async (h, ns, va) => {
    addNexthop(h, { id: 7, gateway: "10.9.0.2", oif: va, protocol: 202 });
    addNexthop(h, { id: 8, gateway: "10.9.0.3", oif: va, protocol: 4, onlink: true });
    assert.throws(
      () => addNexthop(h, { id: 7, gateway: "10.9.0.4", oif: va, protocol: 202 }),
      (e: unknown) => e instanceof Error && /EEXIST/.test(e.message),
    );
    const mine = listNexthops(h, { protocol: 202 });
    assert.deepEqual(mine.map((n) => [n.id, n.gateway, n.oif, n.onlink, n.special]), [
      [7, "10.9.0.2", va, false, false],
    ]);
    assert.equal(listNexthops(h).find((n) => n.id === 8)?.onlink, true);

    await run("ip", "-n", ns.name, "route", "add", "10.30.0.0/16", "nhid", "7", "proto", "202");
    assert.equal(listRoutes(h, { protocol: 202 })[0].nhid, 7);
    replaceNexthop(h, { id: 7, gateway: "10.9.0.5", oif: va, protocol: 202 });
    assert.equal(listRoutes(h, { protocol: 202 })[0].gateway, "10.9.0.5");
    delNexthop(h, 7);
    assert.deepEqual(listRoutes(h, { protocol: 202 }), []);
    assert.throws(() => delNexthop(h, 7), (e: unknown) => isNotFound(e));
  }),
);

Deno.test(
  "a request batch: later requests use objects made earlier in it; a refused one fails alone",
  inNetns((h, _ns, va) => {
    const batch = createBatch(h);
    const n = 150; // more than one sendmsg's worth
    const routeIndex: number[] = [];
    for (let i = 0; i < n; i++) {
      queueAddNexthop(h, batch, {
        id: 100 + i,
        gateway: `10.9.0.${10 + i}`,
        oif: va,
        protocol: 202,
      });
      routeIndex.push(queueRoute(h, batch, {
        dst: `10.40.${i}.0/24`,
        nhid: 100 + i,
        protocol: 202,
      }, "add"));
    }
    // Refused: the same destination again, and a nexthop id nobody made.
    const dup = queueRoute(h, batch, { dst: "10.40.5.0/24", nhid: 100, protocol: 202 }, "add");
    const missing = queueRoute(h, batch, { dst: "10.41.0.0/24", nhid: 9999, protocol: 202 }, "add");
    assert.equal(batch.size, 2 * n + 2);
    const errors = batch.flush();
    assert.equal(batch.size, 0);
    assert.match(String(errors[dup]?.message), /EEXIST/);
    assert.ok(errors[missing]);
    assert.equal(errors.filter((e) => e).length, 2);
    const routes = listRoutes(h, { protocol: 202 });
    assert.equal(routes.length, n);
    assert.equal(routes.find((r) => r.dst === "10.40.149.0/24")?.gateway, "10.9.0.159");
    assert.deepEqual(createBatch(h).flush(), []);
  }),
);
