import assert from "node:assert/strict";
import { rewriteExternals } from "./bundle.ts";

Deno.test("external npm names in the bundle point at the targets deno.json maps them to", () => {
  const map = {
    "yaml": "npm:yaml@2.9.1",
    "@bufbuild/protobuf/wire": "npm:@bufbuild/protobuf@2/wire",
  };
  const code = [
    `const { parse } = await import("yaml");`,
    `import { BinaryReader } from '@bufbuild/protobuf/wire';`,
    `export { x } from "yaml";`,
    `const s = "yaml"; import("yamlish");`,
  ].join("\n");
  assert.equal(
    rewriteExternals(code, map),
    [
      `const { parse } = await import("npm:yaml@2.9.1");`,
      `import { BinaryReader } from 'npm:@bufbuild/protobuf@2/wire';`,
      `export { x } from "npm:yaml@2.9.1";`,
      `const s = "yaml"; import("yamlish");`,
    ].join("\n"),
  );
});
