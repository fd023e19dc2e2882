/**
 * Where the built test peers live (see build-peers.sh) and how to find one.
 *
 * The peers are built once into a cache folder outside the repository; tests only look them up
 * here and fail with a clear message when the cache has not been filled yet.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "./process.ts";

/** Thrown when a peer binary or file has not been built yet. */
export class PeerMissingError extends Error {
  constructor(what: string, path: string) {
    super(
      `${what} is missing at ${path}: run \`deno task peers\` ` +
        `(tests/infra/build-peers.sh) to build the test peers`,
    );
    this.name = "PeerMissingError";
  }
}

/** Folder of this module (tests/infra). */
export const infraDir: string = dirname(fileURLToPath(import.meta.url));

/** The repository root. */
export const repoRoot: string = join(infraDir, "..", "..");

/** The peers cache folder: $HYDRA_PEERS_DIR, else ~/.cache/hydra-peers. */
export function peersDir(): string {
  const configured = Deno.env.get("HYDRA_PEERS_DIR");
  if (configured) return configured;
  const home = Deno.env.get("HOME");
  if (!home) throw new Error("neither HYDRA_PEERS_DIR nor HOME is set");
  return join(home, ".cache", "hydra-peers");
}

function mustExist(what: string, path: string): string {
  try {
    Deno.statSync(path);
  } catch {
    throw new PeerMissingError(what, path);
  }
  return path;
}

/**
 * Absolute path of a built peer program (`etcd`, `kube-apiserver`, `kubectl`, `containerd`,
 * `containerd-shim-runc-v2`, `ctr`, `crictl`, `cnitool`, `multus`, `whereabouts`, `pause`, ...).
 * Throws {@link PeerMissingError} when it has not been built.
 */
export function peerBin(name: string): string {
  return mustExist(name, join(peersDir(), "bin", name));
}

/**
 * Fails the calling test unless it runs as root and every peer named is
 * built: a test that cannot run counts as failed, never as skipped, and the
 * error says which peer is missing and how to build it.
 */
export function requirePeers(...names: string[]): void {
  if (Deno.uid() !== 0) {
    throw new Error("this test needs root (namespaces, links, a runtime): run it as root");
  }
  for (const name of names) peerBin(name);
}

/** Folder of the programs from build-peers.sh (put it first on PATH for shims). */
export function peerBinDir(): string {
  return join(peersDir(), "bin");
}

/**
 * Folder holding the current reference CNI plugins (CNI 1.1.0), kept apart from the distribution's
 * older ones in /usr/lib/cni. Throws when they have not been built.
 */
export function referencePluginDir(): string {
  const dir = join(peersDir(), "cni-bin");
  mustExist("reference CNI plugins", join(dir, "bridge"));
  return dir;
}

/** The offline pause image archive (OCI layout in a tar). */
export function pauseImageArchive(): string {
  return mustExist("pause image archive", join(peersDir(), "images", "pause.tar"));
}

/** The pinned versions from versions.env, e.g. `versions().PAUSE_IMAGE`. */
export function versions(): Record<string, string> {
  const text = Deno.readTextFileSync(join(infraDir, "versions.env"));
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    out[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
  }
  return out;
}

/** Name under which the offline pause image is imported and used as sandbox image. */
export function pauseImageName(): string {
  const name = versions().PAUSE_IMAGE;
  if (!name) throw new Error("PAUSE_IMAGE is not set in versions.env");
  return name;
}

/**
 * Builds whatever peers are missing (all when `names` is empty), showing the build log on stderr,
 * and returns the cache folder.
 */
export async function buildPeers(names: string[] = []): Promise<string> {
  const child = new Deno.Command(join(infraDir, "build-peers.sh"), {
    args: names,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`build-peers.sh failed (exit ${out.code})`);
  const match = /^PEERS_DIR=(.*)$/m.exec(stdout);
  if (!match) throw new Error(`build-peers.sh printed no PEERS_DIR: ${stdout}`);
  return match[1];
}

/** True when every named peer program exists. */
export function havePeers(...names: string[]): boolean {
  return names.every((name) => {
    try {
      peerBin(name);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs a peer program to completion and returns its stdout (throws on failure). */
export async function runPeer(name: string, args: string[]): Promise<string> {
  return (await runCommand(peerBin(name), args)).stdout;
}
