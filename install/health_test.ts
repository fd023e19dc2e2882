import assert from "node:assert/strict";
import { isAlive, newInstallHealth } from "./health.ts";

Deno.test("liveness fails only when the loop stopped finishing passes", () => {
  const h = newInstallHealth(5000);
  assert.equal(isAlive(h.status), true, "alive before the first pass (it may be waiting)");
  h.status.lastPassAt = 1_000_000;
  assert.equal(isAlive(h.status, 1_000_000 + 30_000), true);
  assert.equal(isAlive(h.status, 1_000_000 + 61_000), false);
  assert.equal(h.endpoint.healthz().ok, false);
});

Deno.test("readiness says what is awaited or the last error; metrics follow", () => {
  const h = newInstallHealth(5000);
  h.setWaiting("a default CNI conf in /etc/cni/net.d");
  assert.deepEqual(h.endpoint.readyz(), {
    ok: false,
    detail: "not ready: waiting for a default CNI conf in /etc/cni/net.d",
  });
  h.setWaiting(undefined);
  h.recordPass(false, "cannot write /opt/cni/bin/hydra");
  assert.match(h.endpoint.readyz().detail ?? "", /cannot write/);
  h.recordPass(true);
  h.recordChange("kubeconfig");
  h.recordChange("kubeconfig");
  assert.equal(h.endpoint.readyz().ok, true);
  const text = h.endpoint.registry.render();
  assert.match(text, /^hydra_install_ready 1$/m);
  assert.match(text, /^hydra_install_changes_total\{role="kubeconfig"\} 2$/m);
  assert.match(text, /^hydra_install_passes_total\{result="error"\} 1$/m);
});
