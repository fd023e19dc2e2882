/**
 * Checks whole network configurations against the shapes of their kinds:
 * a `.conf` or `.conflist`, a NetworkAttachmentDefinition's config, the
 * meta-CNI conf with its delegates. Each plugin object is checked with the
 * shape of its `type` (hydra's built-ins and the reference plugins they
 * follow, the meta-CNI), its `ipam` block with the shape of the IPAM's
 * `type`; plugins hydra knows nothing of get the CNI spec's keys checked
 * and anything else allowed.
 *
 * `hydra doctor --conf` and the installer report every problem as an error;
 * the meta-CNI logs the unknown keys of its delegates as warnings (each
 * built-in enforces its own types when it runs).
 *
 * @module
 */

import { ANY_PLUGIN_SHAPE, CONFLIST_SHAPE } from "../cni/conf_schema.ts";
import { type CheckResult, checkShape, keyPath, type Shape } from "../pkg/schema.ts";
import { isJsonObject, type JsonObject } from "../pkg/fields.ts";
import { IPAM_SHAPES } from "../ipam/schemas.ts";
import { PLUGIN_SHAPES } from "../plugins/schemas.ts";
import { META_SHAPE } from "./meta_schema.ts";

/** How a config is held. */
export interface ConfContext {
  /** It is a delegate of the meta-CNI (or a file in its conf folder): a top-level `ifname` is hydra's. */
  delegate?: boolean;
}

/** The shape of a plugin `type`, when hydra has one. */
export function shapeOfType(type: unknown): Shape | undefined {
  if (typeof type !== "string") return undefined;
  if (type === "hydra") return META_SHAPE;
  return Object.hasOwn(PLUGIN_SHAPES, type) ? PLUGIN_SHAPES[type] : undefined;
}

const IFNAME_KEY = { ifname: { type: "string" as const } };

function withIfName(shape: Shape): Shape {
  return { ...shape, keys: { ...shape.keys, ...IFNAME_KEY } };
}

function merge(into: CheckResult, from: CheckResult): void {
  into.problems.push(...from.problems);
  into.notes.push(...from.notes);
}

/** The `ipam` block of a plugin: its type is required when the block says anything. */
function checkIpam(plugin: JsonObject, where: string, out: CheckResult): void {
  const ipam = plugin.ipam;
  if (!isJsonObject(ipam)) return;
  const path = keyPath(where, "ipam");
  const type = ipam.type;
  if (type === undefined || type === null || type === "") {
    if (Object.keys(ipam).length > 0) {
      out.problems.push({
        kind: "value",
        path: `${path}.type`,
        message: `"${path}" has no "type": no IPAM plugin would run and the interface ` +
          `would get no address`,
      });
    }
    return;
  }
  const shape = typeof type === "string" && Object.hasOwn(IPAM_SHAPES, type)
    ? IPAM_SHAPES[type]
    : undefined;
  if (shape) merge(out, checkShape(ipam, shape, path));
}

/** One plugin object: its type's shape, its IPAM, a meta-CNI's delegates. */
function checkPlugin(plugin: JsonObject, where: string, ctx: ConfContext): CheckResult {
  const out: CheckResult = { problems: [], notes: [] };
  const base = shapeOfType(plugin.type) ?? ANY_PLUGIN_SHAPE;
  merge(out, checkShape(plugin, ctx.delegate ? withIfName(base) : base, where));
  checkIpam(plugin, where, out);
  if (plugin.type === "hydra" && Array.isArray(plugin.delegates)) {
    plugin.delegates.forEach((d, i) => {
      if (isJsonObject(d)) {
        merge(
          out,
          checkNetworkConfig(d, `${keyPath(where, "delegates")}[${i}]`, { delegate: true }),
        );
      }
    });
  }
  return out;
}

/**
 * Every problem of a network configuration (a single plugin config or a
 * list), with key paths under `where`, and the foreign spellings it uses.
 */
export function checkNetworkConfig(
  conf: JsonObject,
  where = "",
  ctx: ConfContext = {},
): CheckResult {
  if (conf.plugins === undefined) return checkPlugin(conf, where, ctx);
  const out = checkShape(conf, ctx.delegate ? withIfName(CONFLIST_SHAPE) : CONFLIST_SHAPE, where);
  if (Array.isArray(conf.plugins)) {
    conf.plugins.forEach((p, i) => {
      if (isJsonObject(p)) merge(out, checkPlugin(p, `${keyPath(where, "plugins")}[${i}]`, {}));
    });
  }
  return out;
}
