/**
 * Where the API server is and how to authenticate to it: from a kubeconfig
 * file (its current context, or a named one) or from the in-cluster
 * ServiceAccount mount. Only what a node component needs is supported:
 * server, CA, bearer token (inline or file, re-read as it rotates) and
 * client certificates (inline or file).
 *
 * A kubeconfig that is JSON (which is also YAML) is parsed without loading
 * the YAML parser, which keeps a per-pod exec fast; hydra writes its own
 * kubeconfig that way.
 *
 * @module
 */
import { parseConfigText } from "../pkg/config_text.ts";
import { fields } from "../pkg/fields.ts";

// Path helpers of our own: node:path costs a per-pod exec several milliseconds and megabytes.
function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** Hands out the current bearer token, re-reading its file when it may have rotated. */
export interface TokenSource {
  /** The token to send now. */
  token(): Promise<string>;
  /** Forget the cached token (after a 401) so the next call reads it again. */
  invalidate(): void;
}

/** Everything needed to reach and authenticate to one API server. */
export interface KubeConnection {
  /** Base URL, e.g. "https://10.96.0.1:443", without a trailing slash. */
  server: string;
  /** PEM CA certificates to trust; absent means the system roots. */
  caCerts?: string[];
  /** PEM client certificate (chain) and key for mutual TLS. */
  clientCert?: string;
  clientKey?: string;
  tokenSource?: TokenSource;
  /** The context's namespace (kubeconfig) or the pod's (in cluster). */
  namespace?: string;
  /** Where this came from, for messages: a file path or "in-cluster". */
  source: string;
}

/** A kubeconfig or in-cluster setup that cannot be used; names the file and field. */
export class KubeconfigError extends Error {
  readonly file: string;
  readonly field?: string;

  constructor(file: string, message: string, field?: string) {
    super(`kubeconfig ${file}${field ? `: ${field}` : ""}: ${message}`);
    this.name = "KubeconfigError";
    this.file = file;
    this.field = field;
  }
}

/** How long a token read from a file is used before the file is read again. */
const TOKEN_REREAD_MS = 60_000;

/** A token source over a file, re-read after {@link TOKEN_REREAD_MS} or an invalidate(). */
export function fileTokenSource(path: string, describe: string = path): TokenSource {
  let cached: string | undefined;
  let readAt = 0;
  return {
    async token() {
      if (cached === undefined || Date.now() - readAt > TOKEN_REREAD_MS) {
        let text: string;
        try {
          text = await Deno.readTextFile(path);
        } catch (err) {
          throw new KubeconfigError(describe, `cannot read token file ${path}: ${errText(err)}`);
        }
        cached = text.trim();
        readAt = Date.now();
      }
      return cached;
    },
    invalidate() {
      cached = undefined;
    },
  };
}

/** A token source for a fixed token. */
export function staticTokenSource(token: string): TokenSource {
  return { token: () => Promise.resolve(token), invalidate() {} };
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type Doc = Record<string, unknown>;

function isDoc(v: unknown): v is Doc {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses kubeconfig text (JSON or YAML; see pkg/config_text.ts). */
async function parseDocument(text: string, file: string): Promise<Doc> {
  let doc: unknown;
  try {
    doc = await parseConfigText(text);
  } catch (err) {
    throw new KubeconfigError(file, `not valid YAML or JSON: ${errText(err)}`);
  }
  if (!isDoc(doc)) throw new KubeconfigError(file, "not a kubeconfig (expected a mapping)");
  return doc;
}

/** Finds `{name, <kind>: {...}}` in a named list such as `clusters`. */
function named(doc: Doc, list: string, kind: string, name: string, file: string) {
  const items = doc[list];
  if (items !== undefined && !Array.isArray(items)) {
    throw new KubeconfigError(file, "must be a list", list);
  }
  for (const [i, item] of (items ?? []).entries()) {
    if (isDoc(item) && item.name === name) {
      const body = item[kind] ?? {};
      if (!isDoc(body)) {
        throw new KubeconfigError(file, "must be a mapping", `${list}[${i}].${kind}`);
      }
      return { body, where: `${list}[${i}] ("${name}").${kind}` };
    }
  }
  throw new KubeconfigError(file, `no entry named "${name}"`, list);
}

function str(body: Doc, key: string, where: string, file: string): string | undefined {
  return fields(body, {
    where,
    emptyStringUnset: true,
    fail: (p) => new KubeconfigError(file, `must be ${p.expected}`, p.path),
  }).string(key);
}

function decodeBase64(text: string, field: string, file: string): string {
  try {
    const bin = atob(text.replace(/\s+/g, ""));
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw new KubeconfigError(file, "is not valid base64", field);
  }
}

/**
 * Reads `<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig's
 * directory) from a cluster or user entry; data wins, as in kubectl.
 */
async function pem(
  body: Doc,
  key: string,
  where: string,
  file: string,
): Promise<string | undefined> {
  const data = str(body, `${key}-data`, where, file);
  if (data !== undefined) return decodeBase64(data, `${where}.${key}-data`, file);
  const path = str(body, key, where, file);
  if (path === undefined) return undefined;
  const full = isAbsolute(path) ? path : join(dirname(file), path);
  try {
    return await Deno.readTextFile(full);
  } catch (err) {
    throw new KubeconfigError(file, `cannot read ${full}: ${errText(err)}`, `${where}.${key}`);
  }
}

/**
 * Loads a kubeconfig file and resolves one context into a connection.
 *
 * @param context the context to use; the file's `current-context` when omitted
 */
export async function loadKubeconfig(file: string, context?: string): Promise<KubeConnection> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new KubeconfigError(file, `cannot read: ${errText(err)}`);
  }
  return await kubeconfigFromText(text, file, context);
}

/**
 * Resolves kubeconfig text into a connection. Files it references are read
 * relative to `file`'s directory.
 */
export async function kubeconfigFromText(
  text: string,
  file: string,
  context?: string,
): Promise<KubeConnection> {
  const doc = await parseDocument(text, file);
  const ctxName = context ?? doc["current-context"];
  if (typeof ctxName !== "string" || ctxName === "") {
    throw new KubeconfigError(file, "is not set and no context was given", "current-context");
  }
  const ctx = named(doc, "contexts", "context", ctxName, file);
  const clusterName = str(ctx.body, "cluster", ctx.where, file);
  if (!clusterName) throw new KubeconfigError(file, "is missing", `${ctx.where}.cluster`);
  const cluster = named(doc, "clusters", "cluster", clusterName, file);
  const server = str(cluster.body, "server", cluster.where, file);
  if (!server) throw new KubeconfigError(file, "is missing", `${cluster.where}.server`);
  if (!/^https?:\/\/[^/]/.test(server)) {
    throw new KubeconfigError(file, `"${server}" is not an http(s) URL`, `${cluster.where}.server`);
  }
  if (cluster.body["insecure-skip-tls-verify"] === true) {
    throw new KubeconfigError(
      file,
      "is not supported: give the cluster's CA instead",
      `${cluster.where}.insecure-skip-tls-verify`,
    );
  }
  const conn: KubeConnection = { server: server.replace(/\/+$/, ""), source: file };
  const ca = await pem(cluster.body, "certificate-authority", cluster.where, file);
  if (ca !== undefined) conn.caCerts = [ca];
  const ns = str(ctx.body, "namespace", ctx.where, file);
  if (ns) conn.namespace = ns;

  const userName = str(ctx.body, "user", ctx.where, file);
  if (!userName) return conn;
  const user = named(doc, "users", "user", userName, file);
  for (const unsupported of ["exec", "auth-provider", "username", "password"]) {
    if (user.body[unsupported] !== undefined && user.body[unsupported] !== null) {
      throw new KubeconfigError(
        file,
        "is not supported: use a token, a token file or a client certificate",
        `${user.where}.${unsupported}`,
      );
    }
  }
  conn.clientCert = await pem(user.body, "client-certificate", user.where, file);
  conn.clientKey = await pem(user.body, "client-key", user.where, file);
  if ((conn.clientCert === undefined) !== (conn.clientKey === undefined)) {
    const missing = conn.clientCert === undefined ? "client-certificate" : "client-key";
    throw new KubeconfigError(
      file,
      "is missing (certificate and key go together)",
      `${user.where}.${missing}`,
    );
  }
  if (conn.clientCert === undefined) {
    delete conn.clientCert;
    delete conn.clientKey;
  }
  const token = str(user.body, "token", user.where, file);
  const tokenFile = str(user.body, "tokenFile", user.where, file);
  if (token !== undefined) {
    conn.tokenSource = staticTokenSource(token);
  } else if (tokenFile !== undefined) {
    const full = isAbsolute(tokenFile) ? tokenFile : join(dirname(file), tokenFile);
    conn.tokenSource = fileTokenSource(full, `${file}: ${user.where}.tokenFile`);
  }
  return conn;
}

/** The ServiceAccount mount every pod gets. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The in-cluster connection: KUBERNETES_SERVICE_HOST/PORT and the
 * ServiceAccount's token (re-read as the kubelet rotates it), CA and namespace.
 * Returns undefined when not running in a cluster (no KUBERNETES_SERVICE_HOST).
 */
export async function inClusterConnection(
  env: { get(key: string): string | undefined } = Deno.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): Promise<KubeConnection | undefined> {
  const host = env.get("KUBERNETES_SERVICE_HOST");
  const port = env.get("KUBERNETES_SERVICE_PORT");
  if (!host) return undefined;
  const source = "in-cluster";
  if (!port) throw new KubeconfigError(source, "is not set", "KUBERNETES_SERVICE_PORT");
  const read = async (name: string, optional = false) => {
    try {
      return await Deno.readTextFile(join(dir, name));
    } catch (err) {
      if (optional && err instanceof Deno.errors.NotFound) return undefined;
      throw new KubeconfigError(source, `cannot read ${join(dir, name)}: ${errText(err)}`);
    }
  };
  const ca = await read("ca.crt");
  const tokenSource = fileTokenSource(join(dir, "token"), `${source}: ${join(dir, "token")}`);
  await tokenSource.token();
  const namespace = (await read("namespace", true))?.trim();
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const conn: KubeConnection = {
    server: `https://${hostPart}:${port}`,
    caCerts: [ca!],
    tokenSource,
    source,
  };
  if (namespace) conn.namespace = namespace;
  return conn;
}

/**
 * The connection a node component should use: the given kubeconfig when
 * there is one, else the in-cluster ServiceAccount, else undefined (no API).
 */
export async function resolveConnection(kubeconfig?: string): Promise<KubeConnection | undefined> {
  if (kubeconfig) return await loadKubeconfig(kubeconfig);
  return await inClusterConnection();
}
