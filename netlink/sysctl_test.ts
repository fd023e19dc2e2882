import assert from "node:assert/strict";
import { withNetns } from "../tests/helpers/netns.ts";
import {
  addLink,
  closeHandle,
  NetlinkError,
  openHandle,
  sysctlPath,
  sysctlRead,
  sysctlWrite,
} from "./mod.ts";

Deno.test("a sysctl written inside a namespace differs from the host's", async () => {
  await withNetns(1, async (ns) => {
    const key = "net.ipv4.ip_forward";
    const host = (await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward")).trim();
    const wanted = host === "1" ? "0" : "1";
    sysctlWrite(ns.path, key, wanted);
    assert.equal((await ns.exec("cat", "/proc/sys/net/ipv4/ip_forward")).trim(), wanted);
    assert.equal(sysctlRead(ns.path, key), wanted);
    assert.equal((await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward")).trim(), host);
    assert.equal(sysctlRead(undefined, key), host);
    sysctlWrite(ns.path, "/proc/sys/net/ipv4/ip_forward", host);
    assert.equal((await ns.exec("cat", "/proc/sys/net/ipv4/ip_forward")).trim(), host);
  });
});

Deno.test("per-interface sysctls, also for names with a dot (slash keys)", async () => {
  await withNetns(1, async (ns) => {
    const h = openHandle({ netnsPath: ns.path });
    try {
      addLink(h, { kind: "veth", name: "va", peer: { name: "va.10" } });
    } finally {
      closeHandle(h);
    }
    sysctlWrite(ns.path, "net.ipv6.conf.va.disable_ipv6", 1);
    assert.equal((await ns.exec("cat", "/proc/sys/net/ipv6/conf/va/disable_ipv6")).trim(), "1");
    sysctlWrite(ns.path, "net/ipv4/conf/va.10/forwarding", "1");
    assert.equal((await ns.exec("cat", "/proc/sys/net/ipv4/conf/va.10/forwarding")).trim(), "1");
    assert.equal(sysctlRead(ns.path, "net/ipv4/conf/va.10/forwarding"), "1");
  });
});

Deno.test("sysctl keys that leave /proc/sys are refused; missing keys are ENOENT", async () => {
  await withNetns(1, (ns) => {
    assert.equal(sysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
    for (
      const bad of ["", "../../etc/passwd", "net/../../etc", "/proc/sys/../self/environ", "net//x"]
    ) {
      assert.throws(
        () => sysctlPath(bad),
        (e) => e instanceof NetlinkError && e.code === "EINVAL",
        bad,
      );
    }
    assert.throws(
      () => sysctlWrite(ns.path, "net.ipv4.conf.nosuch0.forwarding", 1),
      (e) => e instanceof NetlinkError && e.code === "ENOENT",
    );
    assert.throws(
      () => sysctlRead(ns.path, "net.ipv4.nosuchkey"),
      (e) => e instanceof NetlinkError && e.code === "ENOENT",
    );
    return Promise.resolve();
  });
});
