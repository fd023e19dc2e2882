/**
 * Every request line the daemon gets, checked before anything acts on it:
 * the operation is one it serves, each field it reads has the right type
 * and a bounded size, and a `cni` request carries nothing but the
 * invocation's arguments (unknown fields are refused there, so a caller
 * cannot believe it handed over a conf, a plugin path or an environment);
 * only a hydra-pool request carries its IPAM config, checked to be one.
 * A request that fails is answered with status 400 and the reason; it never
 * reaches the code that serves requests.
 *
 * @module
 */

import { validateContainerId, validateInterfaceName, validateNetworkName } from "../cni/env.ts";
import { parseCniArgs } from "../cni/args.ts";
import { type DaemonRequest, POOL_PLUGIN } from "../daemonclient/protocol.ts";

/** A request that is not one the daemon serves. */
export class BadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadRequestError";
  }
}

/** Texts longer than this are refused (paths, names, messages). */
const MAX_TEXT = 4096;
/** CNI_ARGS longer than this are refused. */
const MAX_CNI_ARGS = 16 * 1024;
/** At most this many attachments or Events in one report. */
const MAX_REPORT_ITEMS = 64;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(o: Obj, key: string, opts: { optional?: boolean; max?: number } = {}): string {
  const v = o[key];
  if (v === undefined && opts.optional) return "";
  if (typeof v !== "string") throw new BadRequestError(`"${key}" must be a string`);
  if (v.length > (opts.max ?? MAX_TEXT)) throw new BadRequestError(`"${key}" is too long`);
  return v;
}

function optionalTimeout(o: Obj): void {
  const v = o.timeoutMs;
  if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
    throw new BadRequestError(`"timeoutMs" must be a number of milliseconds`);
  }
}

function checkGet(o: Obj): void {
  if (!text(o, "path").startsWith("/")) throw new BadRequestError(`"path" must start with "/"`);
  text(o, "uid", { optional: true, max: 128 });
  optionalTimeout(o);
}

function checkCreate(o: Obj): void {
  text(o, "path");
  if (!isObject(o.body)) throw new BadRequestError(`"body" must be an object`);
}

function checkPod(pod: unknown): void {
  if (!isObject(pod)) throw new BadRequestError(`"pod" must be an object`);
  for (const key of ["namespace", "name"]) {
    if (text(pod, key, { max: 253 }) === "") throw new BadRequestError(`"pod.${key}" is empty`);
  }
  text(pod, "uid", { optional: true, max: 128 });
  text(pod, "infraContainerId", { optional: true, max: 256 });
}

function checkReport(o: Obj): void {
  checkPod(o.pod);
  if (!Array.isArray(o.reports) || o.reports.length > MAX_REPORT_ITEMS) {
    throw new BadRequestError(`"reports" must be a list of at most ${MAX_REPORT_ITEMS}`);
  }
  for (const r of o.reports) {
    if (!isObject(r) || typeof r.name !== "string" || typeof r.isDefault !== "boolean") {
      throw new BadRequestError(`each report needs "name" and "isDefault"`);
    }
    if (!isObject(r.result)) throw new BadRequestError(`each report needs a "result" object`);
  }
  if (o.events === undefined) return;
  if (!Array.isArray(o.events) || o.events.length > MAX_REPORT_ITEMS) {
    throw new BadRequestError(`"events" must be a list of at most ${MAX_REPORT_ITEMS}`);
  }
  for (const e of o.events) {
    if (!isObject(e)) throw new BadRequestError(`each event must be an object`);
    text(e, "reason", { max: 128 });
    text(e, "message");
  }
}

/** The fields a `cni` request may carry. */
const CNI_FIELDS = new Set([
  "op",
  "command",
  "containerId",
  "netns",
  "ifName",
  "cniArgs",
  "network",
  "plugin",
  "confDigest",
  "config",
  "runtimeConfig",
  "timeoutMs",
]);

/** Runs a CNI validator, turning its error into a refusal. */
function cniField(check: () => void): void {
  try {
    check();
  } catch (err) {
    throw new BadRequestError((err as Error).message);
  }
}

function checkCni(o: Obj): void {
  for (const key of Object.keys(o)) {
    if (!CNI_FIELDS.has(key)) {
      throw new BadRequestError(`"${key}" is not accepted in a cni request`);
    }
  }
  const command = text(o, "command");
  if (command !== "ADD" && command !== "DEL" && command !== "CHECK") {
    throw new BadRequestError(`"command" must be ADD, DEL or CHECK`);
  }
  const containerId = text(o, "containerId", { max: 256 });
  cniField(() => validateContainerId(containerId));
  const ifName = text(o, "ifName");
  cniField(() => validateInterfaceName(ifName));
  const netns = text(o, "netns");
  if (netns === "" ? command !== "DEL" : !netns.startsWith("/")) {
    throw new BadRequestError(`"netns" must be an absolute path (empty only on a DEL)`);
  }
  if (netns.includes("\0")) throw new BadRequestError(`"netns" holds a NUL byte`);
  const cniArgs = text(o, "cniArgs", { max: MAX_CNI_ARGS });
  cniField(() => parseCniArgs(cniArgs));
  const network = text(o, "network", { max: 253 });
  cniField(() => validateNetworkName(network, "network"));
  if (text(o, "plugin", { max: 253 }) === POOL_PLUGIN) checkPoolConfig(o);
  else checkConfDigest(o);
  if (o.runtimeConfig !== undefined && !isObject(o.runtimeConfig)) {
    throw new BadRequestError(`"runtimeConfig" must be an object`);
  }
  optionalTimeout(o);
}

/** A meta-CNI request names a node conf by its digest and carries none. */
function checkConfDigest(o: Obj): void {
  if (o.config !== undefined) {
    throw new BadRequestError(`"config" is accepted only for ${POOL_PLUGIN}`);
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(text(o, "confDigest"))) {
    throw new BadRequestError(`"confDigest" must be "sha256:" and 64 hex digits`);
  }
}

/**
 * A hydra-pool request carries the config its interface plugin handed it:
 * an object of the request's network whose `ipam.type` is hydra-pool
 * (never a conf of another plugin: the daemon runs nothing else on it).
 */
function checkPoolConfig(o: Obj): void {
  if (o.confDigest !== undefined || o.runtimeConfig !== undefined) {
    throw new BadRequestError(`a ${POOL_PLUGIN} request carries its "config" only`);
  }
  const config = o.config;
  if (!isObject(config)) throw new BadRequestError(`"config" must be an object`);
  if (config.name !== o.network) throw new BadRequestError(`"config.name" is not "network"`);
  const ipam = config.ipam;
  if (!isObject(ipam) || ipam.type !== POOL_PLUGIN) {
    throw new BadRequestError(`"config.ipam.type" must be "${POOL_PLUGIN}"`);
  }
}

const CHECKS: Record<string, (o: Obj) => void> = {
  get: checkGet,
  create: checkCreate,
  report: checkReport,
  ping: () => {},
  cni: checkCni,
};

/** The operations the daemon serves. */
export function isOperation(op: unknown): op is DaemonRequest["op"] {
  return typeof op === "string" && Object.hasOwn(CHECKS, op);
}

/** Checks a decoded request; throws BadRequestError naming what is wrong. */
export function validateRequest(raw: unknown): DaemonRequest {
  if (!isObject(raw)) throw new BadRequestError("a request must be a JSON object");
  if (!isOperation(raw.op)) throw new BadRequestError("unknown op");
  CHECKS[raw.op](raw);
  return raw as unknown as DaemonRequest;
}

/** Decodes and checks one request line. */
export function parseRequest(line: string): DaemonRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (err) {
    throw new BadRequestError(`not JSON: ${(err as Error).message}`);
  }
  return validateRequest(raw);
}
