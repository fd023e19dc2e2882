import assert from "node:assert/strict";
import { staleFiles } from "./proto.ts";

Deno.test("the committed NRI message code is what nri/proto/api.proto generates", async () => {
  assert.deepEqual(await staleFiles(), [], "run `deno task proto` and commit the result");
});
