import assert from "node:assert/strict";
import { deferImport, rewriteExternals } from "./bundle.ts";

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

Deno.test("the entry's import of the plugin path names the file beside it, out of Deno's sight", () => {
  const code = [
    `const { runPluginRole } = await import("./plugin_main.ts");`,
    `const other = await import("./plugin_main.tsx");`,
  ].join("\n");
  assert.equal(
    deferImport(code, "./plugin_main.ts", "./hydra-cni-full.js"),
    [
      `const { runPluginRole } = await import(new URL("./hydra-cni-full.js", import.meta.url).href);`,
      `const other = await import("./plugin_main.tsx");`,
    ].join("\n"),
  );
});
