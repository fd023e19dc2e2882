/**
 * hydra's version, reported by `hydra version` and in CNI VERSION answers'
 * logs.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** hydra's release version, from deno.json. */
export const VERSION: string = denoJson.version;
