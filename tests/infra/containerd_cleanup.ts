/**
 * Tear-down of a private containerd (see containerd.ts), written to work from a plain record so a
 * different process (`cluster down`) can run it, and to be safe to run twice or after a partial
 * start.
 *
 * @module
 */

import { join } from "node:path";
import { removeCgroups, unmountUnder } from "./host.ts";
import {
  killProcesses,
  processesWithArg,
  processGroupMembers,
  removeAll,
  runCommand,
  stopProcessGroup,
} from "./process.ts";

/** Everything needed to clean up a containerd started by startContainerd. */
export interface ContainerdRecord {
  /** Temporary folder holding all of its state. */
  dir: string;
  /** containerd's pid (leader of its process group); 0 before it started. */
  pid: number;
  /** Network namespace it runs in. */
  netnsName: string;
  /** Cgroup parent given to pods. */
  cgroupParent: string;
  /** Its gRPC socket. */
  address: string;
  /** crictl binary. */
  crictl: string;
}

const RUNC = "/usr/sbin/runc";

/**
 * Removes pods (so CNI DEL runs), stops containerd, kills leftover containers and shims, unmounts
 * what is mounted under the folder, removes the pods' cgroups, the network namespace and the folder.
 * Collects errors and throws them together at the end.
 */
export async function cleanupContainerd(record: ContainerdRecord): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  if (record.pid > 1 && processGroupMembers(record.pid).length > 0) {
    // Best effort: a wedged runtime must not stop the rest of the clean-up.
    await step(async () => {
      await runCommand(record.crictl, [
        "--runtime-endpoint",
        `unix://${record.address}`,
        "--timeout",
        "20s",
        "rmp",
        "--all",
        "--force",
      ], { allowFailure: true });
    });
    await step(() => stopProcessGroup(record.pid));
  }
  await step(() => killRuncContainers(join(record.dir, "runc")));
  // Shims run in their own process groups; their command lines name our socket.
  await step(() => killProcesses(processesWithArg(record.dir)));
  await step(() => unmountUnder(record.dir));
  await step(() => removeCgroups(record.cgroupParent));
  await step(async () => {
    await runCommand("ip", ["netns", "delete", record.netnsName], { allowFailure: true });
  });
  await step(() => removeAll(record.dir));
  if (errors.length > 0) throw new AggregateError(errors, "cleaning up containerd failed");
}

async function killRuncContainers(root: string): Promise<void> {
  try {
    await Deno.stat(root);
  } catch {
    return;
  }
  const list = await runCommand(RUNC, ["--root", root, "list", "-q"], { allowFailure: true });
  for (const id of list.stdout.split("\n").filter(Boolean)) {
    await runCommand(RUNC, ["--root", root, "kill", id, "KILL"], { allowFailure: true });
    await runCommand(RUNC, ["--root", root, "delete", "--force", id], { allowFailure: true });
  }
}
