/**
 * hydra's entry point: picks the role from the name it was started under
 * (argv[0]) and from its arguments. Dispatch only; every role lives in its
 * own module and is imported on demand.
 *
 * @module
 */

import { runCniRole } from "./cmd/exec_entry.ts";
import { invokedName } from "./cmd/invoked_name.ts";

async function main(): Promise<number> {
  const args = Deno.args;
  const code = await runCniRole(invokedName(), args);
  if (code !== undefined) return code;
  const { runCli } = await import("./cmd/cli.ts");
  return runCli(args);
}

if (import.meta.main) {
  Deno.exit(await main());
}
