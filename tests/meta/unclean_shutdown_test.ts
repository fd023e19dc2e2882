/**
 * State after an unclean shutdown (power loss, kernel crash) at every point
 * of an ADD: the runtime's DEL after the reboot must succeed (no stuck pod),
 * leave no address, record or result cache of the container (no leak), and
 * leave every other pod's addresses alone so none is handed out twice (no
 * duplicate).
 *
 * What a crash can leave follows how each file is written (see
 * docs/node-daemon.md, "State after a crash"): the attachment record's bytes
 * are synced before it gets its name, so it is absent (or only its temp
 * file is there) or complete; every other file (result caches, address
 * reservations) may be complete, empty or absent, each on its own, and a
 * result cache may also be cut short. The pod's namespace does not survive
 * the reboot. One real ADD provides the files; each case writes back what
 * a crash at one point could have left, with one file (or all) damaged.
 *
 * Needs root.
 */

import assert from "node:assert/strict";
import { ipamReservations, linkName, listFiles, withWorld, type World } from "./harness.ts";
import { createNetns, deleteNetns } from "../helpers/netns.ts";

/** What a crash did to one file. */
type Outcome = "complete" | "empty" | "absent" | "cut";

/** One state file as the ADD left it. */
interface StateFile {
  path: string;
  text: string;
  kind: "record" | "cache" | "reservation";
  /** The network it belongs to (caches, reservations). */
  network?: string;
}

/** The files a completed ADD left, in the order the ADD wrote them. */
async function snapshot(w: World, containerId: string): Promise<StateFile[]> {
  const record = `${w.cacheDir}/attachments/${containerId}-eth0`;
  const files: StateFile[] = [{
    path: record,
    text: await Deno.readTextFile(record),
    kind: "record",
  }];
  for (const network of ["crash-a", "crash-b"]) {
    for (const f of await ipamReservations(w.dataDir)) {
      const path = `${w.dataDir}/${f}`;
      const text = await Deno.readTextFile(path);
      if (f.startsWith(`${network}/`) && text.startsWith(containerId)) {
        files.push({ path, text, kind: "reservation", network });
      }
    }
    const ifName = network === "crash-a" ? "eth0" : "net1";
    const cache = `${w.cacheDir}/results/${network}-${containerId}-${ifName}`;
    files.push({ path: cache, text: await Deno.readTextFile(cache), kind: "cache", network });
  }
  return files;
}

function applied(text: string, outcome: Outcome): string | undefined {
  if (outcome === "absent") return undefined;
  if (outcome === "empty") return "";
  if (outcome === "cut") return text.slice(0, Math.floor(text.length / 3));
  return text;
}

/** One crash state: the files present after `point` writes, each with its outcome. */
interface Case {
  name: string;
  files: { file: StateFile; outcome: Outcome }[];
  /** A temp file of the record's write, left by a crash before its rename. */
  recordTemp?: boolean;
}

/** Outcomes a file may have after a crash (see the module doc). */
function possible(file: StateFile): Outcome[] {
  if (file.kind === "record") return ["complete"];
  if (file.kind === "cache") return ["complete", "empty", "absent", "cut"];
  return ["complete", "empty", "absent"];
}

/** Every crash point, each file damaged alone, then all at once. */
function cases(files: StateFile[]): Case[] {
  const out: Case[] = [
    { name: "before the record", files: [] },
    { name: "during the record's write", files: [], recordTemp: true },
  ];
  for (let point = 1; point <= files.length; point++) {
    const present = files.slice(0, point);
    const at = `after ${
      present.map((f) => f.kind + (f.network ? ` ${f.network}` : "")).join(", ")
    }`;
    out.push({ name: at, files: present.map((file) => ({ file, outcome: "complete" })) });
    for (const [i, f] of present.entries()) {
      for (const outcome of possible(f).filter((o) => o !== "complete")) {
        out.push({
          name: `${at}; ${f.kind} ${f.network ?? ""} ${outcome}`,
          files: present.map((file, j) => ({ file, outcome: j === i ? outcome : "complete" })),
        });
      }
    }
    for (const outcome of ["empty", "absent"] as const) {
      out.push({
        name: `${at}; every file but the record ${outcome}`,
        files: present.map((file) => ({
          file,
          outcome: file.kind === "record" ? "complete" : outcome,
        })),
      });
    }
  }
  return out;
}

/** Writes back what the crash left. */
async function leave(c: Case, recordPath: string): Promise<void> {
  for (const { file, outcome } of c.files) {
    const text = applied(file.text, outcome);
    if (text === undefined) continue;
    await Deno.mkdir(file.path.slice(0, file.path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(file.path, text);
  }
  if (c.recordTemp) {
    const slash = recordPath.lastIndexOf("/");
    const temp = `${recordPath.slice(0, slash)}/.${recordPath.slice(slash + 1)}.tmp-4242-x1`;
    await Deno.mkdir(recordPath.slice(0, slash), { recursive: true });
    await Deno.writeTextFile(temp, "");
    // Left before the reboot: older than any write under way.
    const before = new Date(Date.now() - 120_000);
    await Deno.utime(temp, before, before);
  }
}

function conf(w: World, bridges: string[], subnets: string[]) {
  const net = (name: string, i: number) => ({
    cniVersion: "1.0.0",
    name,
    type: "hydra-bridge",
    bridge: bridges[i],
    ipam: { type: "hydra-ipam", subnet: `${subnets[i]}.0/24`, dataDir: w.dataDir },
  });
  return {
    cniVersion: "1.1.0",
    name: "pods",
    type: "hydra",
    cacheDir: w.cacheDir,
    delegates: [net("crash-a", 0), net("crash-b", 1)],
  };
}

Deno.test("after an unclean shutdown at any point of an ADD: no leak, no duplicate, no stuck pod", async () => {
  await withWorld(1, async (w) => {
    const c = conf(w, [linkName("hcr"), linkName("hcr")], [w.subnet(), w.subnet()]);
    // A pod that lives through it all: its addresses must never be given away.
    const bystander = w.pods[0];
    const add = await w.cni("ADD", c, { containerId: "bystander" });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const kept = await ipamReservations(w.dataDir);
    const keptState = await listFiles(w.cacheDir);

    const victim = await createNetns("hyc");
    const id = "victim";
    let files: StateFile[];
    try {
      const first = await w.cni("ADD", c, { pod: victim, containerId: id });
      assert.equal(first.code, 0, first.stdout + first.stderr);
      files = await snapshot(w, id);
      assert.equal(files.length, 5, "record, and per network a reservation and a cache");
      assert.equal((await w.cni("DEL", c, { pod: victim, containerId: id })).code, 0);
    } finally {
      await deleteNetns(victim);
    }
    const gone = { ...victim, path: victim.path };
    const all = cases(files);
    for (const crash of all) {
      await leave(crash, files[0].path);
      for (const attempt of [1, 2]) {
        const del = await w.cni("DEL", c, { pod: gone, containerId: id });
        assert.equal(del.code, 0, `${crash.name}: DEL ${attempt}: ${del.stdout}${del.stderr}`);
      }
      assert.deepEqual(await ipamReservations(w.dataDir), kept, `${crash.name}: addresses`);
      const state = (await listFiles(w.cacheDir)).filter((f) => !f.includes("/.damaged-"));
      assert.deepEqual(
        state.filter((f) => !/\.tmp-4242-/.test(f)),
        keptState,
        `${crash.name}: records and caches`,
      );
    }
    // GC (the runtime's, or the daemon at its start) sweeps what killed writes left.
    const valid = [{ containerID: "bystander", ifname: "eth0" }];
    const gc = await w.cni("GC", { ...c, "cni.dev/valid-attachments": valid });
    assert.equal(gc.code, 0, gc.stdout);
    assert.deepEqual(
      (await listFiles(w.cacheDir)).filter((f) => !f.includes("/.damaged-")),
      keptState,
      "no temp file left",
    );
    // The next pod gets addresses nobody holds; the bystander still has its own.
    const next = await createNetns("hyc");
    try {
      const again = await w.cni("ADD", c, { pod: next, containerId: "next" });
      assert.equal(again.code, 0, again.stdout);
      const now = await ipamReservations(w.dataDir);
      assert.equal(now.length, 4);
      assert.equal(new Set(now).size, 4, "no address twice");
      assert.ok(kept.every((r) => now.includes(r)), "the bystander's addresses are its own");
      assert.equal((await w.cni("DEL", c, { pod: next, containerId: "next" })).code, 0);
    } finally {
      await deleteNetns(next);
    }
    assert.equal((await w.cni("DEL", c, { pod: bystander, containerId: "bystander" })).code, 0);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
    console.log(`${all.length} crash states checked`);
  });
});
