/**
 * Which hydra role a container of a deploy/ manifest runs.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Role } from "../../pkg/operation_flags.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** The role a container runs: the image's entrypoint is `hydra install`, else its first arguments. */
export function roleOf(container: Obj): Role {
  const args: string[] = container.args ?? [];
  if (!container.command) return "install";
  const roles: Record<string, Role> = {
    "nri serve": "nri",
    "route sync": "route",
    "daemon": "daemon",
    "policy sync": "policy",
    "dra serve": "dra",
    "ipam controller": "ipam-controller",
    "hybrid sync": "hybrid-sync",
    "hybrid controller": "hybrid-controller",
  };
  const role = roles[args.slice(0, 2).join(" ")] ?? roles[args[0]];
  assert.ok(role, `container ${container.name}: which role is ${args.slice(0, 2).join(" ")}?`);
  return role;
}
