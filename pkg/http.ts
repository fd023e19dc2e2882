/**
 * The HTTP endpoint of hydra's long-running roles: `/healthz` (liveness),
 * `/readyz` (readiness) and `/metrics` (Prometheus text format), on a TCP
 * address or a unix socket.
 *
 * A unix socket is reachable from any network namespace that sees the file,
 * which is how a daemon running inside a node's namespace is watched from
 * outside it.
 *
 * @module
 */

import type { Logger } from "./log.ts";
import { EXPOSITION_CONTENT_TYPE, type Registry } from "./metrics.ts";

/** Where the endpoint listens. */
export type ListenAddress =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/** The answer of a health or readiness check. */
export interface CheckResult {
  ok: boolean;
  /** Said in the body: why not, or a short status. */
  detail?: string;
}

/** What the endpoint reports. */
export interface HealthEndpoint {
  /** Liveness: is the process doing its job at all. */
  healthz(): CheckResult;
  /** Readiness: has it done its job at least once and is it current. */
  readyz(): CheckResult;
  registry: Registry;
}

/** Thrown for an address that is neither `[HOST]:PORT` nor `unix:PATH`. */
export class ListenAddressError extends Error {
  constructor(text: string) {
    super(`${JSON.stringify(text)} is not [HOST]:PORT or unix:PATH`);
    this.name = "ListenAddressError";
  }
}

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT`, `:PORT` (every address) or
 * `unix:PATH`.
 */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (!path) throw new ListenAddressError(text);
    return { transport: "unix", path };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new ListenAddressError(text);
  return { transport: "tcp", hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Formats an address the way {@link parseListenAddress} reads it. */
export function formatListenAddress(addr: ListenAddress): string {
  if (addr.transport === "unix") return `unix:${addr.path}`;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function text(body: string, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/** Answers one request of the endpoint. */
export function handleRequest(req: Request, ep: HealthEndpoint): Response {
  const path = new URL(req.url).pathname;
  if (req.method !== "GET" && req.method !== "HEAD") return text("method not allowed\n", 405);
  const check = (r: CheckResult) =>
    r.ok ? text(`ok${r.detail ? `: ${r.detail}` : ""}\n`) : text(`${r.detail ?? "not ok"}\n`, 503);
  switch (path) {
    case "/healthz":
      return check(ep.healthz());
    case "/readyz":
      return check(ep.readyz());
    case "/metrics":
      return new Response(ep.registry.render(), {
        headers: { "content-type": EXPOSITION_CONTENT_TYPE },
      });
    default:
      return text("not found\n", 404);
  }
}

/** A running endpoint. */
export interface HealthServer {
  /** The address it listens on (with the port chosen when 0 was asked). */
  readonly address: ListenAddress;
  /** Stops listening and waits for open requests to finish. */
  shutdown(): Promise<void>;
}

/**
 * Serves the endpoint. A stale unix socket file left by an earlier run is
 * replaced; a busy TCP port throws Deno.errors.AddrInUse.
 */
export async function serveHealth(addr: ListenAddress, ep: HealthEndpoint): Promise<HealthServer> {
  const handler = (req: Request) => handleRequest(req, ep);
  const onListen = () => {};
  if (addr.transport === "unix") {
    await Deno.remove(addr.path).catch(() => {});
    const server = Deno.serve({ path: addr.path, onListen }, handler);
    return {
      address: addr,
      async shutdown() {
        await server.shutdown();
        await Deno.remove(addr.path).catch(() => {});
      },
    };
  }
  const server = Deno.serve({ hostname: addr.hostname, port: addr.port, onListen }, handler);
  return {
    address: { transport: "tcp", hostname: addr.hostname, port: server.addr.port },
    shutdown: () => server.shutdown(),
  };
}

/**
 * Starts a role's endpoint on `addr` and logs where it listens (with the
 * port chosen when 0 was asked, as `address`). A busy address throws, for
 * the role to say so in its own terms.
 */
export async function startHealthEndpoint(
  addr: ListenAddress,
  ep: HealthEndpoint,
  log: Logger,
): Promise<HealthServer> {
  const server = await serveHealth(addr, ep);
  log.info("serving /healthz, /readyz and /metrics", {
    address: formatListenAddress(server.address),
  });
  return server;
}

/**
 * GETs `path` from an endpoint (TCP or unix socket) with a bare HTTP/1.0
 * request and returns status and body. For tests and `hydra doctor`-style
 * probes; fetch cannot reach a unix socket.
 */
export async function getFromEndpoint(
  addr: ListenAddress,
  path: string,
): Promise<{ status: number; body: string }> {
  const conn = addr.transport === "unix"
    ? await Deno.connect({ transport: "unix", path: addr.path })
    : await Deno.connect({ hostname: addr.hostname, port: addr.port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.0\r\nHost: local\r\n\r\n`));
    const decoder = new TextDecoder();
    const buf = new Uint8Array(16 * 1024);
    let raw = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      raw += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    raw += decoder.decode();
    const split = raw.indexOf("\r\n\r\n");
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(raw)?.[1] ?? 0);
    return { status, body: split < 0 ? "" : raw.slice(split + 4) };
  } finally {
    try {
      conn.close();
    } catch {
      // already closed by the peer
    }
  }
}
