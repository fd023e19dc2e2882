/**
 * The node kubeconfig's own identity: instead of copying the installer
 * pod's token to the host (which would give the meta-CNI the installer's
 * rights, and the installer the node's), the installer mints a token for a
 * separate ServiceAccount (`--node-service-account`, hydra-node in the
 * manifests) through the TokenRequest API, bound to this node's Node
 * object. The API server then names the node in every request made with it
 * (`authentication.kubernetes.io/node-name`), which is what lets a
 * ValidatingAdmissionPolicy confine its writes to this node's pods; the
 * token stops working when the Node object is deleted.
 *
 * A token is kept while more than half its lifetime is left (also across
 * restarts: it is read back from the kubeconfig), then replaced. When the
 * API server cannot mint a new one, a token that is still valid is kept and
 * the pass says so.
 *
 * @module
 */

import { createKubeClient } from "../kube/client.ts";
import { InstallError } from "./error.ts";
import type { Credentials } from "./kubeconfig.ts";

/** The ServiceAccount the node token is for, and how long a token lives. */
export interface NodeTokenConfig {
  namespace: string;
  name: string;
  /** The Node object the token is bound to (this node). */
  nodeName: string;
  ttlSeconds: number;
}

/** A token's claims as far as they matter here. */
export interface TokenClaims {
  /** "system:serviceaccount:<ns>:<name>". */
  sub?: string;
  /** Expiry, seconds since the epoch. */
  exp?: number;
  /** The node the token is bound to. */
  node?: string;
}

/**
 * The claims of a JWT, read without checking its signature (the token is
 * the installer's own, read back from a root-only file); undefined when
 * `token` is not a JWT.
 */
export function tokenClaims(token: string): TokenClaims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const json = atob(parts[1].replaceAll("-", "+").replaceAll("_", "/"));
    const doc = JSON.parse(json) as Record<string, unknown>;
    const k8s = doc["kubernetes.io"] as { node?: { name?: unknown } } | undefined;
    return {
      sub: typeof doc.sub === "string" ? doc.sub : undefined,
      exp: typeof doc.exp === "number" ? doc.exp : undefined,
      node: typeof k8s?.node?.name === "string" ? k8s.node.name : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Seconds `token` is valid for from `nowS`, if it is this config's (same account and node). */
export function remainingSeconds(
  token: string,
  cfg: NodeTokenConfig,
  nowS: number,
): number | undefined {
  const c = tokenClaims(token);
  if (!c || c.exp === undefined) return undefined;
  if (c.sub !== `system:serviceaccount:${cfg.namespace}:${cfg.name}`) return undefined;
  if (c.node !== cfg.nodeName) return undefined;
  return c.exp - nowS;
}

/** Mints a token for the node ServiceAccount, bound to the Node object, with the installer's own. */
export async function mintNodeToken(installer: Credentials, cfg: NodeTokenConfig): Promise<string> {
  const client = createKubeClient({
    server: installer.server,
    caCerts: [installer.caPem],
    tokenSource: { token: () => Promise.resolve(installer.token), invalidate() {} },
    source: "the installer's ServiceAccount",
  }, { userAgent: "hydra-install", timeoutMs: 10_000 });
  const path = `/api/v1/namespaces/${encodeURIComponent(cfg.namespace)}/serviceaccounts/` +
    `${encodeURIComponent(cfg.name)}/token`;
  try {
    const res = await client.create<{ status?: { token?: string } }>(path, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: {
        expirationSeconds: cfg.ttlSeconds,
        boundObjectRef: { apiVersion: "v1", kind: "Node", name: cfg.nodeName },
      },
    });
    const token = res.status?.token;
    if (!token) throw new Error("the answer holds no token");
    return token;
  } catch (err) {
    throw new InstallError(
      `cannot mint the node kubeconfig's token (ServiceAccount ${cfg.namespace}/${cfg.name}, ` +
        `bound to Node ${cfg.nodeName}): ${err instanceof Error ? err.message : err}; does the ` +
        `installer's ServiceAccount have the hydra-install role, and is --node-name this node?`,
      { serviceAccount: `${cfg.namespace}/${cfg.name}`, node: cfg.nodeName },
    );
  } finally {
    client.close();
  }
}

/**
 * The token the node kubeconfig should hold now: `current` (read back from
 * the file) while more than half its lifetime is left, else a fresh one.
 * When minting fails and `current` is still valid for a minute, it is kept
 * and `onKept` is told why.
 */
export async function nodeToken(
  installer: Credentials,
  cfg: NodeTokenConfig,
  current: string | undefined,
  onKept: (why: string) => void,
  nowS = Date.now() / 1000,
): Promise<string> {
  const left = current === undefined ? undefined : remainingSeconds(current, cfg, nowS);
  if (current !== undefined && left !== undefined && left > cfg.ttlSeconds / 2) return current;
  try {
    return await mintNodeToken(installer, cfg);
  } catch (err) {
    if (current === undefined || left === undefined || left < 60) throw err;
    onKept(
      `${err instanceof Error ? err.message : err}; keeping the node token, valid for ` +
        `${Math.round(left)} s more`,
    );
    return current;
  }
}
