import assert from "node:assert/strict";
import { createRegistry } from "./metrics.ts";
import { addProcessMetrics, readProcessFigures } from "./process_metrics.ts";
import { VERSION } from "./version.ts";

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `${name} missing in:\n${text}`);
  return Number(m[1]);
}

Deno.test("process metrics of this process, read from /proc at each scrape", async () => {
  const reg = createRegistry();
  addProcessMetrics(reg);
  const text = reg.render();
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
  const start = sample(text, "process_start_time_seconds");
  // Deno's own start is the process's: within a minute before now, not in the future.
  assert.ok(start <= Date.now() / 1000 + 1 && start > Date.now() / 1000 - 600, String(start));
  assert.ok(sample(text, "process_resident_memory_bytes") > 10 * 1024 * 1024);
  assert.ok(
    sample(text, "process_virtual_memory_bytes") > sample(text, "process_resident_memory_bytes"),
  );
  assert.ok(sample(text, "process_max_fds") >= sample(text, "process_open_fds"));
  // A file opened shows as one more descriptor in the next scrape.
  const fds = sample(text, "process_open_fds");
  const f = await Deno.open(new URL(import.meta.url).pathname);
  try {
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(sample(reg.render(), "process_open_fds"), fds + 1);
  } finally {
    f.close();
  }
  // Spinning the CPU moves the counter (the machine may be shared: spin until it moved, 5 s at most).
  const cpu = sample(text, "process_cpu_seconds_total");
  const until = Date.now() + 5_000;
  let moved = cpu;
  while (Date.now() < until && moved < cpu + 0.1) {
    const slice = Date.now() + 120;
    while (Date.now() < slice) Math.sqrt(Math.random());
    await new Promise((r) => setTimeout(r, 110));
    moved = sample(reg.render(), "process_cpu_seconds_total");
  }
  assert.ok(moved >= cpu + 0.1, `${cpu} -> ${moved}`);
  assert.match(
    text,
    new RegExp(`^hydra_build_info\\{version="${VERSION}",revision="[^"]+"\\} 1$`, "m"),
  );
});

Deno.test("a figure that cannot be read leaves its family out instead of reporting 0", () => {
  const reg = createRegistry();
  addProcessMetrics(reg, () => ({ cpuSeconds: 1.5 }));
  const text = reg.render();
  assert.equal(sample(text, "process_cpu_seconds_total"), 1.5);
  assert.doesNotMatch(text, /process_open_fds/);
  assert.deepEqual(readProcessFigures("/nonexistent"), {
    cpuSeconds: undefined,
    residentBytes: undefined,
    virtualBytes: undefined,
    openFds: undefined,
    maxFds: undefined,
    startTimeSeconds: undefined,
  });
});
