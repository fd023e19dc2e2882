/**
 * whereabouts as a peer: its binary (built by build-peers.sh) and its CRDs,
 * read at run time from its module in the Go module cache at the pinned
 * WHEREABOUTS_VERSION (the build put it there; nothing of it is committed).
 *
 * @module
 */

import { join } from "node:path";
import { peerBin, PeerMissingError, versions } from "./peers.ts";
import { runCommand } from "./process.ts";

/** The whereabouts CNI binary. */
export function whereaboutsBin(): string {
  return peerBin("whereabouts");
}

/** Where the pinned whereabouts module lies in the Go module cache. */
export async function whereaboutsModuleDir(): Promise<string> {
  const version = versions().WHEREABOUTS_VERSION;
  const mod = `github.com/k8snetworkplumbingwg/whereabouts@${version}`;
  const out = await runCommand("go", ["mod", "download", "-json", mod], {
    allowFailure: true,
    env: { GOFLAGS: "", GOTOOLCHAIN: "local", GO111MODULE: "on" },
    cwd: "/",
  });
  let dir: string | undefined;
  try {
    dir = (JSON.parse(out.stdout) as { Dir?: string }).Dir;
  } catch {
    // no JSON: the go command failed
  }
  if (out.code !== 0 || !dir) {
    throw new PeerMissingError(
      `whereabouts module ${mod} (${out.stderr.trim()})`,
      "the Go module cache",
    );
  }
  return dir;
}

/** whereabouts' CRD manifests (IPPool, OverlappingRangeIPReservation, NodeSlicePool). */
export async function whereaboutsCrds(): Promise<string[]> {
  const dir = join(await whereaboutsModuleDir(), "doc", "crds");
  return [
    "whereabouts.cni.cncf.io_ippools.yaml",
    "whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml",
  ].map((f) => join(dir, f));
}
