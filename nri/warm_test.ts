import assert from "node:assert/strict";
import { createLogger } from "../pkg/log.ts";
import { currentNetnsId } from "../netlink/mod.ts";
import { LOCK_DIR } from "../plugins/host_lock.ts";
import { warmAttachPath } from "./warm.ts";

async function names(dir: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.startsWith(prefix)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

async function linkNames(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["-j", "link", "show"] }).output();
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { ifname: string }[])
    .map((l) => l.ifname);
}

Deno.test({
  name:
    "the attach-path warm-up runs whole bridge and macvlan attachments and leaves nothing behind",
  async fn() {
    // It makes namespaces, links and a bridge: as root, like every kernel test here.
    assert.equal(Deno.uid(), 0, "this test needs root: run it as root");
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
    const before = {
      netns: currentNetnsId(),
      links: await linkNames(),
      tmp: await names(tmp, "hydra-warm-"),
      locks: await names(LOCK_DIR, "bridge-hywarm"),
    };
    await warmAttachPath(log, ["hydra-bridge", "hydra-macvlan", "hydra-ipam"]);
    assert.deepEqual(lines.filter((l) => l.level !== "debug"), []);
    const done = lines.find((l) => l.msg === "attach path warmed up");
    assert.ok(done && typeof done.ms === "number", JSON.stringify(lines));
    // Both attachments got their addresses from hydra-ipam's documentation subnets.
    const addresses = done.addresses as string[];
    assert.equal(addresses.length, 2, JSON.stringify(done));
    assert.match(addresses[0], /^192\.0\.2\.\d+\/24$/);
    assert.match(addresses[1], /^198\.51\.100\.\d+\/24$/);
    // Back in its own namespace, which saw no bridge or veth come or go.
    assert.equal(currentNetnsId(), before.netns);
    assert.deepEqual(await linkNames(), before.links);
    assert.deepEqual(await names(tmp, "hydra-warm-"), before.tmp);
    assert.deepEqual(await names(LOCK_DIR, "bridge-hywarm"), before.locks);
  },
});
