import assert from "node:assert/strict";
import { handleHealth, isAlive, newStatus } from "./health.ts";

Deno.test("liveness fails only when the loop stopped finishing passes", () => {
  const s = newStatus(5000);
  assert.equal(isAlive(s), true, "alive before the first pass (it may be waiting)");
  s.lastPassAt = 1_000_000;
  assert.equal(isAlive(s, 1_000_000 + 30_000), true);
  assert.equal(isAlive(s, 1_000_000 + 61_000), false);
});

Deno.test("readiness reports what is awaited or the last error", async () => {
  const s = newStatus(5000);
  const get = (path: string) => handleHealth(new Request(`http://x${path}`), s);
  s.waitingFor = "a default CNI conf in /etc/cni/net.d";
  assert.equal(get("/readyz").status, 503);
  assert.match(await get("/readyz").text(), /waiting for a default CNI conf/);
  s.waitingFor = undefined;
  s.lastPassOk = false;
  s.lastError = "cannot write /opt/cni/bin/hydra";
  assert.match(await get("/readyz").text(), /cannot write/);
  s.lastPassOk = true;
  assert.equal(get("/readyz").status, 200);
  s.changes = { kubeconfig: 3 };
  assert.match(await get("/metrics").text(), /hydra_install_changes_total\{role="kubeconfig"\} 3/);
});
