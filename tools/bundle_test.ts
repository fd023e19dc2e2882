import assert from "node:assert/strict";
import { deferImport, rewriteExternals, shellInputs } from "./bundle.ts";

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

Deno.test("the launcher's inputs list, sourced by sh, gives back every path as it is", async () => {
  const inputs = ["cni/skel.ts", "deno.json", "odd dir/it's [a]*.ts"];
  const file = await Deno.makeTempFile({ suffix: ".sh" });
  try {
    await Deno.writeTextFile(file, shellInputs(inputs));
    const out = await new Deno.Command("sh", {
      args: ["-c", '. "$1"; printf %s "$hydra_inputs"', "sh", file],
      stdout: "piped",
    }).output();
    assert.ok(out.success);
    assert.equal(new TextDecoder().decode(out.stdout), inputs.join("\n"));
  } finally {
    await Deno.remove(file);
  }
});
