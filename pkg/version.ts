/**
 * hydra's version, reported by `hydra version` and in CNI VERSION answers'
 * logs.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** hydra's release version, from deno.json. */
export const VERSION: string = denoJson.version;

/**
 * The source revision hydra was built from, as the image declares it
 * (`HYDRA_REVISION`, set from the image's build argument), or "unknown"
 * (a run from a source tree).
 */
export function buildRevision(): string {
  try {
    const r = Deno.env.get("HYDRA_REVISION")?.trim();
    return r && /^[\w.+-]{1,80}$/.test(r) ? r : "unknown";
  } catch {
    return "unknown";
  }
}
