/**
 * CNI spec versions: parsing, comparison, the version a configuration
 * selects, and the answer to the VERSION command.
 *
 * Versions are compared numerically part by part, as libcni does: "" means
 * 0.1.0, missing parts count as 0, and more than three parts is invalid.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "./types.ts";

/** A parsed version: [major, minor, patch]. */
export type VersionTriple = readonly [number, number, number];

/** The answer a plugin prints for CNI_COMMAND=VERSION. */
export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * Parses "1.0.0", "0.4", "1" or "" (= 0.1.0) into numbers.
 * Throws CniError 1 (incompatible version) for anything else.
 */
export function parseVersion(version: string): VersionTriple {
  if (version === "") return [0, 1, 0];
  const parts = version.split(".");
  if (parts.length > 3) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `invalid version "${version}": too many parts`,
    );
  }
  const nums = parts.map((part) => {
    if (!/^\d+$/.test(part)) {
      throw new CniError(
        ErrorCode.IncompatibleCniVersion,
        `invalid version "${version}": "${part}" is not a number`,
      );
    }
    return Number(part);
  });
  return [nums[0], nums[1] ?? 0, nums[2] ?? 0];
}

/** Compares two versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    if (pa[i] !== pb[i]) return pa[i] - pb[i];
  }
  return 0;
}

/** True when `version` >= `min`. */
export function versionAtLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

/** The version a config declares: "" (absent) means 0.1.0. */
export function normalizeVersion(version: string | undefined): string {
  return version === undefined || version === "" ? "0.1.0" : version;
}

/** True when hydra speaks exactly this version string. */
export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/**
 * The cniVersion to tag an error JSON with: the config's when hydra speaks
 * it, else hydra's current version.
 *
 * @param config the parsed stdin config (anything JSON.parse returned)
 */
export function errorVersion(config: unknown): string {
  const v = (config as { cniVersion?: unknown } | null)?.cniVersion;
  if (typeof v === "string" && isSupportedVersion(normalizeVersion(v))) {
    return normalizeVersion(v);
  }
  return CURRENT_VERSION;
}

/**
 * The version a configuration list selects: the highest of `cniVersion` and
 * every entry of `cniVersions`, ignoring entries newer than hydra speaks (as
 * libcni does, so a list written for a future spec still loads). Without
 * `cniVersions`, `cniVersion` is taken as is. Returns "" when neither is set.
 * Throws CniError 1 when an entry is not a version.
 */
export function selectVersion(cniVersion: string | undefined, cniVersions?: string[]): string {
  if (cniVersions === undefined) return cniVersion ?? "";
  const candidates = [...cniVersions];
  if (cniVersion !== undefined && cniVersion !== "") candidates.push(cniVersion);
  let best = "";
  for (const candidate of candidates) {
    parseVersion(candidate);
    if (compareVersions(candidate, CURRENT_VERSION) > 0) continue;
    if (best === "" || compareVersions(candidate, best) > 0) best = candidate;
  }
  return best === "" ? (cniVersion ?? "") : best;
}

/**
 * Ensures a plugin supporting `supported` may run a config of `configVersion`.
 * The match is exact, as in libcni's reconciler ("1.0" is not "1.0.0").
 */
export function assertVersionSupported(configVersion: string, supported: readonly string[]): void {
  const version = normalizeVersion(configVersion);
  if (!supported.includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      "incompatible CNI versions",
      `config is "${version}", plugin supports [${supported.map((v) => `"${v}"`).join(" ")}]`,
    );
  }
}

/**
 * The VERSION answer: echoes the requested version when it is one hydra
 * speaks (the spec asks for the input's version), else reports hydra's own.
 */
export function versionAnswer(
  requested: string | undefined,
  supported: readonly string[],
): VersionInfo {
  const cniVersion = requested !== undefined && isSupportedVersion(requested)
    ? requested
    : CURRENT_VERSION;
  return { cniVersion, supportedVersions: [...supported] };
}
