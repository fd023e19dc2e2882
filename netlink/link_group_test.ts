import assert from "node:assert/strict";
import { inNetns } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addLink,
  delLinkGroup,
  delLinkGroupOffThread,
  getLink,
  isNotFound,
  listLinks,
  NetlinkError,
  setLink,
  setLinkGroup,
} from "./mod.ts";

// deno-lint-ignore no-explicit-any
type IpLink = Record<string, any>;

async function ipLinkNames(ns: TestNetns): Promise<string[]> {
  return (await ns.ipJson<IpLink[]>("link", "show")).map((l) => l.ifname).sort();
}

Deno.test(
  "link group: set, read back as ip shows it, and delete exactly the group's links",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "ga", peer: { name: "gb" } });
    addLink(h, { kind: "veth", name: "gc", peer: { name: "gd" } });
    addLink(h, { kind: "veth", name: "keep", peer: { name: "keepp" } });
    assert.equal(getLink(h, "ga").group, 0);
    setLinkGroup(h, "ga", 0x2345678);
    setLinkGroup(h, "gc", 0x2345678);
    assert.equal(getLink(h, "ga").group, 0x2345678);
    const [shown] = await ns.ipJson<IpLink[]>("link", "show", "dev", "gc");
    assert.equal(Number(shown.group), 0x2345678);
    delLinkGroup(h, 0x2345678);
    // Both pairs of the group went (a veth takes its peer along), the other stayed.
    assert.deepEqual(await ipLinkNames(ns), ["keep", "keepp", "lo"]);
    // The kernel reports an empty group as ENODEV.
    assert.throws(() => delLinkGroup(h, 0x2345678), (e) => isNotFound(e));
  }),
);

Deno.test(
  "link group: the default group is never deleted wholesale; a missing link is ENODEV",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "ga", peer: { name: "gb" } });
    assert.throws(() => delLinkGroup(h, 0), NetlinkError);
    assert.throws(() => setLinkGroup(h, "ga", -1), NetlinkError);
    assert.deepEqual(await ipLinkNames(ns), ["ga", "gb", "lo"]);
    assert.throws(() => setLinkGroup(h, "nope", 7), (e) => isNotFound(e));
  }),
);

Deno.test(
  "link group: deleted off the JavaScript thread, with the kernel's answer as usual",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "ga", peer: { name: "gb" } });
    addLink(h, { kind: "veth", name: "keep", peer: { name: "keepp" } });
    // setLink puts a link into a group together with other changes.
    setLink(h, "ga", { up: false, group: 0x3456789 });
    assert.equal(getLink(h, "ga").group, 0x3456789);
    await delLinkGroupOffThread(h, 0x3456789);
    assert.deepEqual(await ipLinkNames(ns), ["keep", "keepp", "lo"]);
    // The handle goes on working, and a refusal arrives as the same error.
    assert.equal(listLinks(h).length, 3);
    await assert.rejects(delLinkGroupOffThread(h, 0x3456789), (e) => isNotFound(e));
    await assert.rejects(delLinkGroupOffThread(h, 0), NetlinkError);
  }),
);
