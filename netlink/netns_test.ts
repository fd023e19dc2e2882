import assert from "node:assert/strict";
import { hostIpJson, run, tryRun, uniqueName, withNetns } from "../tests/helpers/netns.ts";
import {
  addLink,
  closeFd,
  closeHandle,
  createNamedNetns,
  currentNetnsId,
  deleteNamedNetns,
  isExists,
  isNotFound,
  listLinks,
  NetlinkError,
  netnsId,
  openHandle,
  openNetnsFd,
  sameNetns,
  withHandle,
  withNetnsSync,
} from "./mod.ts";

/** Names of the links a fresh handle opened on the current thread sees. */
function linksHere(): string[] {
  return withHandle({}, (h) => listLinks(h).map((l) => l.name).sort());
}

async function hostLinkNames(): Promise<string[]> {
  return (await hostIpJson<Array<{ ifname: string }>>("link", "show")).map((l) => l.ifname).sort();
}

Deno.test("withNetnsSync runs inside the namespace and comes back", async () => {
  await withNetns(1, async (ns) => {
    const home = currentNetnsId();
    const inside = withNetnsSync(ns.path, () => ({ id: currentNetnsId(), links: linksHere() }));
    assert.equal(inside.id, netnsId(ns.path));
    assert.notEqual(inside.id, home);
    assert.deepEqual(inside.links, ["lo"]);
    assert.equal(currentNetnsId(), home);
    assert.deepEqual(linksHere(), await hostLinkNames());
  });
});

Deno.test("withNetnsSync comes back after the function throws", async () => {
  await withNetns(1, async (ns) => {
    const home = currentNetnsId();
    assert.throws(
      () =>
        withNetnsSync(ns.path, () => {
          assert.equal(currentNetnsId(), netnsId(ns.path));
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.equal(currentNetnsId(), home);
    assert.deepEqual(linksHere(), await hostLinkNames());
  });
});

Deno.test("withNetnsSync nests, refuses async functions, and fails cleanly on a bad path", async () => {
  await withNetns(2, (a, b) => {
    const home = currentNetnsId();
    withNetnsSync(a.path, () => {
      withNetnsSync(b.path, () => assert.equal(currentNetnsId(), netnsId(b.path)));
      assert.equal(currentNetnsId(), netnsId(a.path));
    });
    assert.equal(currentNetnsId(), home);
    assert.throws(() => withNetnsSync(a.path, () => Promise.resolve(1)), TypeError);
    assert.equal(currentNetnsId(), home);
    assert.throws(
      () => withNetnsSync("/var/run/netns/does-not-exist-here", () => 1),
      (e) => e instanceof NetlinkError && e.code === "ENOENT",
    );
    assert.equal(currentNetnsId(), home);
    assert.equal(withNetnsSync(undefined, () => currentNetnsId()), home);
    return Promise.resolve();
  });
});

Deno.test("a handle keeps acting in its namespace after the thread is back", async () => {
  await withNetns(1, async (ns) => {
    const h = openHandle({ netnsPath: ns.path });
    try {
      addLink(h, { kind: "bridge", name: "brh0" });
    } finally {
      closeHandle(h);
    }
    const names = (await ns.ipJson<Array<{ ifname: string }>>("link", "show")).map((l) => l.ifname);
    assert.deepEqual(names.sort(), ["brh0", "lo"]);
    assert.ok(!(await hostLinkNames()).includes("brh0"));
  });
});

Deno.test("a handle can be opened from a namespace fd", async () => {
  await withNetns(1, (ns) => {
    const fd = openNetnsFd(ns.path);
    try {
      const names = withHandle({ netnsFd: fd }, (h) => listLinks(h).map((l) => l.name));
      assert.deepEqual(names, ["lo"]);
      assert.ok(sameNetns({ fd }, ns.path));
    } finally {
      closeFd(fd);
    }
    return Promise.resolve();
  });
});

Deno.test("sameNetns tells namespaces apart", async () => {
  await withNetns(2, (a, b) => {
    assert.ok(sameNetns("/proc/thread-self/ns/net"));
    assert.ok(sameNetns(`/proc/${Deno.pid}/ns/net`));
    assert.ok(!sameNetns(a.path));
    assert.ok(sameNetns(a.path, a.path));
    assert.ok(!sameNetns(a.path, b.path));
    return Promise.resolve();
  });
});

Deno.test("create and delete a named namespace like ip netns", async () => {
  const name = uniqueName("hynn");
  const home = currentNetnsId();
  try {
    const path = createNamedNetns(name);
    assert.equal(path, `/var/run/netns/${name}`);
    assert.equal(currentNetnsId(), home);
    assert.notEqual(netnsId(path), home);
    assert.ok((await run("ip", "netns", "list")).split("\n").some((l) => l.split(" ")[0] === name));
    const links = JSON.parse(await run("ip", "-n", name, "-j", "link", "show"));
    assert.deepEqual(links.map((l: { ifname: string }) => l.ifname), ["lo"]);
    assert.throws(() => createNamedNetns(name), (e) => isExists(e));
    assert.equal(currentNetnsId(), home);
    deleteNamedNetns(name);
    assert.ok(
      !(await run("ip", "netns", "list")).split("\n").some((l) => l.split(" ")[0] === name),
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    assert.throws(() => deleteNamedNetns(name), (e) => isNotFound(e));
    assert.throws(
      () => createNamedNetns("../etc"),
      (e) => e instanceof NetlinkError && e.code === "EINVAL",
    );
  } finally {
    await tryRun("ip", "netns", "delete", name);
  }
});

Deno.test("a child process started synchronously inside withNetnsSync runs in the namespace", async () => {
  await withNetns(1, (ns) => {
    const out = withNetnsSync(
      ns.path,
      () => new Deno.Command("readlink", { args: ["/proc/self/ns/net"] }).outputSync(),
    );
    const ino = netnsId(ns.path).split(":")[1];
    assert.equal(new TextDecoder().decode(out.stdout).trim(), `net:[${ino}]`);
    return Promise.resolve();
  });
});
