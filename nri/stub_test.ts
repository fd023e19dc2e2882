import assert from "node:assert/strict";
import { reconnectDelay, runNriPlugin } from "./stub.ts";

Deno.test("reconnect delay doubles from the first delay and stays under the cap, with jitter", () => {
  for (let i = 0; i < 50; i++) {
    assert.ok(reconnectDelay(1, 250, 10_000) >= 200 && reconnectDelay(1, 250, 10_000) <= 300);
    const third = reconnectDelay(3, 250, 10_000);
    assert.ok(third >= 800 && third <= 1200, `third attempt waits ${third} ms`);
    assert.ok(reconnectDelay(40, 250, 10_000) <= 12_000);
  }
});

Deno.test("plugin name and index are checked the way runtimes check them, before connecting", async () => {
  const env = () => undefined;
  await assert.rejects(
    runNriPlugin({}, { pluginName: "bad name", env }),
    /invalid NRI plugin name/,
  );
  await assert.rejects(runNriPlugin({}, { pluginIndex: "7", env }), /two digits/);
  await assert.rejects(runNriPlugin({}, { pluginIndex: "007", env }), /two digits/);
  await assert.rejects(
    runNriPlugin({}, { env: (k) => k === "NRI_PLUGIN_SOCKET" ? "three" : undefined }),
    /NRI_PLUGIN_SOCKET/,
  );
  await assert.rejects(
    runNriPlugin({}, { env: (k) => k === "NRI_PLUGIN_IDX" ? "1a" : undefined }),
    /two digits/,
  );
});
