import assert from "node:assert/strict";
import { baseName, parentDir } from "./fsutil.ts";

Deno.test("parentDir and baseName read a path as dirname(1) and basename(1) do", () => {
  const cases: [string, string, string][] = [
    ["/etc/hydra/nodes.json", "/etc/hydra", "nodes.json"],
    ["nodes.json", ".", "nodes.json"],
    ["./nodes.json", ".", "nodes.json"],
    ["/nodes.json", "/", "nodes.json"],
    ["/etc/hydra/", "/etc", "hydra"],
    ["/etc//hydra", "/etc", "hydra"],
    ["/", "/", "/"],
  ];
  for (const [path, dir, base] of cases) {
    assert.equal(parentDir(path), dir, path);
    assert.equal(baseName(path), base, path);
  }
});
