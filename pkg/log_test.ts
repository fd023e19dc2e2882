import assert from "node:assert/strict";
import { withTempDir } from "../tests/helpers/netns.ts";
import { createLogger, isLogFormat, isLogLevel } from "./log.ts";

Deno.test("logger writes JSON lines at or above its level, with fields", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", sink: (l) => lines.push(l), fields: { plugin: "x" } });
  log.debug("hidden");
  log.info("shown", { n: 1 });
  log.with({ containerId: "c" }).error("bad", { error: new Error("boom") });
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith("\n")));
  const [a, b] = lines.map((l) => JSON.parse(l));
  assert.equal(a.level, "info");
  assert.equal(a.msg, "shown");
  assert.equal(a.plugin, "x");
  assert.equal(a.n, 1);
  assert.ok(!Number.isNaN(Date.parse(a.time)));
  assert.deepEqual([b.level, b.containerId, b.error], ["error", "c", "boom"]);
});

Deno.test("logger appends to a file (0600) and level off writes nothing", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/hydra.log`;
    createLogger({ level: "debug", file }).debug("one");
    createLogger({ level: "debug", file }).warn("two");
    createLogger({ level: "off", file }).error("three");
    const lines = (await Deno.readTextFile(file)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.msg), ["one", "two"]);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  });
  assert.equal(isLogLevel("warn"), true);
  assert.equal(isLogLevel("verbose"), false);
});

Deno.test("text format: time, padded level, message, key=value with quoting where needed", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", format: "text", sink: (l) => lines.push(l) });
  log.with({ role: "route" }).warn("sync failed\nagain", {
    node: "n1",
    error: new Error('no "route" here'),
    count: 3,
    cidrs: ["10.0.0.0/24"],
    empty: "",
  });
  assert.equal(lines.length, 1);
  const m = /^(\S+) WARN {2}(.*)\n$/.exec(lines[0]);
  assert.ok(m, lines[0]);
  assert.ok(!Number.isNaN(Date.parse(m[1])));
  assert.equal(
    m[2],
    'sync failed\\nagain role=route node=n1 error="no \\"route\\" here" count=3 cidrs=["10.0.0.0/24"] empty=""',
  );
  assert.equal(isLogFormat("text"), true);
  assert.equal(isLogFormat("logfmt"), false);
});
