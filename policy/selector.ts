/**
 * Kubernetes label selectors (`matchLabels` and `matchExpressions`), checked
 * as the API server checks them for built-in objects and then matched
 * against label sets. A MultiNetworkPolicy is a custom resource, so nothing
 * upstream has checked its selectors: everything here starts from unknown
 * input, and a selector too large to be meant (see {@link SELECTOR_LIMITS})
 * is refused rather than evaluated.
 *
 * @module
 */

/** Labels of an object. */
export type Labels = Readonly<Record<string, string>>;

/** A checked selector. */
export interface Selector {
  /** True for `{}`: it selects everything. */
  readonly everything: boolean;
  matches(labels: Labels | undefined): boolean;
}

/** Bounds on one selector. */
export const SELECTOR_LIMITS = {
  /** `matchLabels` entries plus `matchExpressions` items. */
  requirements: 64,
  /** Values of one `In`/`NotIn` expression. */
  values: 256,
} as const;

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why a label key is invalid, or undefined when it is valid (a qualified name). */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key ${JSON.stringify(key)}: the prefix must be a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `label key ${JSON.stringify(key)}: the name must be 1-63 letters, digits, "-", "_" ` +
      `or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why a label value is invalid, or undefined when it is valid. */
export function labelValueProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return `label value ${JSON.stringify(value)} is not a string`;
  if (value === "") return undefined;
  if (value.length > 63 || !NAME.test(value)) {
    return `label value ${JSON.stringify(value)}: at most 63 letters, digits, "-", "_" or ".", ` +
      `starting and ending with a letter or digit`;
  }
  return undefined;
}

type Requirement = (labels: Labels) => boolean;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function expression(raw: unknown, where: string, errors: string[]): Requirement | undefined {
  if (!isObject(raw)) return void errors.push(`${where}: not an object`);
  const { key, operator, values } = raw;
  if (typeof key !== "string") return void errors.push(`${where}.key: not a string`);
  const keyProblem = labelKeyProblem(key);
  if (keyProblem) return void errors.push(`${where}.key: ${keyProblem}`);
  const list = values === undefined || values === null ? [] : values;
  if (!Array.isArray(list)) return void errors.push(`${where}.values: not a list`);
  if (list.length > SELECTOR_LIMITS.values) {
    return void errors.push(
      `${where}.values: ${list.length} values, more than ${SELECTOR_LIMITS.values}`,
    );
  }
  for (const v of list) {
    const p = labelValueProblem(v);
    if (p) return void errors.push(`${where}.values: ${p}`);
  }
  const set = new Set(list as string[]);
  switch (operator) {
    case "In":
    case "NotIn":
      if (set.size === 0) return void errors.push(`${where}: ${operator} needs values`);
      return operator === "In"
        ? (l) => Object.hasOwn(l, key) && set.has(l[key])
        : (l) => !Object.hasOwn(l, key) || !set.has(l[key]);
    case "Exists":
    case "DoesNotExist":
      if (set.size !== 0) return void errors.push(`${where}: ${operator} takes no values`);
      return operator === "Exists" ? (l) => Object.hasOwn(l, key) : (l) => !Object.hasOwn(l, key);
    default:
      return void errors.push(
        `${where}.operator: ${JSON.stringify(operator)} is not In, NotIn, Exists or DoesNotExist`,
      );
  }
}

/**
 * Checks a selector; problems go to `errors` (each prefixed with `where`)
 * and the result is then undefined.
 */
export function parseSelector(raw: unknown, where: string, errors: string[]): Selector | undefined {
  if (!isObject(raw)) return void errors.push(`${where}: not an object`);
  const before = errors.length;
  const reqs: Requirement[] = [];
  const matchLabels = raw.matchLabels ?? {};
  const matchExpressions = raw.matchExpressions ?? [];
  if (!isObject(matchLabels)) errors.push(`${where}.matchLabels: not an object`);
  if (!Array.isArray(matchExpressions)) errors.push(`${where}.matchExpressions: not a list`);
  if (errors.length > before) return undefined;
  const labelEntries = Object.entries(matchLabels as Record<string, unknown>);
  const count = labelEntries.length + (matchExpressions as unknown[]).length;
  if (count > SELECTOR_LIMITS.requirements) {
    errors.push(`${where}: ${count} requirements, more than ${SELECTOR_LIMITS.requirements}`);
    return undefined;
  }
  for (const [key, value] of labelEntries) {
    const p = labelKeyProblem(key) ?? labelValueProblem(value);
    if (p) errors.push(`${where}.matchLabels: ${p}`);
    else reqs.push((l) => Object.hasOwn(l, key) && l[key] === value);
  }
  for (const [i, e] of (matchExpressions as unknown[]).entries()) {
    const r = expression(e, `${where}.matchExpressions[${i}]`, errors);
    if (r) reqs.push(r);
  }
  if (errors.length > before) return undefined;
  return {
    everything: reqs.length === 0,
    matches: (labels) => reqs.every((r) => r(labels ?? {})),
  };
}
