import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { readinessIndicatorExists, waitForReadinessIndicator } from "./readiness.ts";

Deno.test("readiness indicator: returns once the file appears, code 11 when it never does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hydra-ready-" });
  try {
    const file = `${dir}/ready`;
    assert.equal(await readinessIndicatorExists(file), false);
    await assert.rejects(
      waitForReadinessIndicator(file, { timeoutMs: 60, pollMs: 20 }),
      (e: unknown) =>
        e instanceof CniError && e.code === ErrorCode.TryAgainLater &&
        e.message.includes(file),
    );
    const waiting = waitForReadinessIndicator(file, { timeoutMs: 10_000, pollMs: 20 });
    await Deno.writeTextFile(file, "");
    await waiting;
    assert.equal(await readinessIndicatorExists(file), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
