/**
 * Ownership of test peer instances. Each instance folder holds `owner.json`: the process that
 * started it and the record needed to tear it down. When a test run is killed before its
 * `finally` blocks run, the next start of the same kind of instance finds folders whose owner is
 * gone and cleans them up. Detached instances (`cluster up`) have no owner and are left alone.
 *
 * @module
 */

import { join } from "node:path";
import { isAlive, type ProcessIdentity, selfIdentity } from "./process.ts";

const OWNER_FILE = "owner.json";

/** Contents of an instance's owner file. */
export interface OwnerFile<R> {
  /** The process that must stop the instance; null when detached. */
  owner: ProcessIdentity | null;
  record: R;
}

/**
 * Folder instance folders are made in: $HYDRA_TEST_RUN_DIR, else /run/hydra-test. Kept out of /tmp
 * so that broad clean-ups of temporary files cannot pull a running instance's state away. Keep it
 * short: containerd's shim sockets live below it and unix socket paths are limited to 107 bytes.
 */
export function runRoot(): string {
  return Deno.env.get("HYDRA_TEST_RUN_DIR") ?? "/run/hydra-test";
}

/** Makes a fresh instance folder `<runRoot>/<prefix><random>`. */
export async function makeInstanceDir(prefix: string): Promise<string> {
  await Deno.mkdir(runRoot(), { recursive: true, mode: 0o700 });
  return await Deno.makeTempDir({ dir: runRoot(), prefix });
}

/** Writes (or rewrites) an instance's owner file. */
export async function writeOwner<R>(dir: string, record: R, detached: boolean): Promise<void> {
  const file: OwnerFile<R> = { owner: detached ? null : selfIdentity(), record };
  const path = join(dir, OWNER_FILE);
  await Deno.writeTextFile(`${path}.new`, JSON.stringify(file));
  await Deno.rename(`${path}.new`, path);
}

/**
 * Cleans up instance folders named `<prefix>*` whose owner process has exited. Best effort:
 * failures are reported on stderr and otherwise ignored.
 */
export async function sweepOrphans<R>(
  prefix: string,
  cleanup: (record: R) => Promise<void>,
): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(runRoot())];
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith(prefix)) continue;
    let file: OwnerFile<R>;
    try {
      file = JSON.parse(Deno.readTextFileSync(join(runRoot(), entry.name, OWNER_FILE)));
    } catch {
      continue; // being created, or not ours
    }
    if (file.owner === null || isAlive(file.owner)) continue;
    try {
      await cleanup(file.record);
    } catch (err) {
      console.error(`cleaning up orphaned ${entry.name} failed: ${err}`);
    }
  }
}
