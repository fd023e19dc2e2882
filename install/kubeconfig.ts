/**
 * The node kubeconfig, for the hydra processes the runtime starts on the
 * host (meta-CNI, kube-node IPAM), which cannot see a pod's projected
 * volume: the cluster CA and either a token minted for the node's own
 * ServiceAccount (`--node-service-account`, node_token.ts) or, without it,
 * the installer pod's own token.
 *
 * The token and the CA are embedded, so the file is complete on its own on
 * the host; the installer rewrites it (atomically) whenever the token or
 * the CA changes, which keeps a bound, rotating token fresh.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { InstallError } from "./error.ts";

export { SERVICE_ACCOUNT_DIR } from "../kube/kubeconfig.ts";

/** Where the ServiceAccount credentials come from. */
export interface CredentialSource {
  /** The projected token file. */
  tokenFile: string;
  /** The cluster CA bundle. */
  caFile: string;
  /** API server URL; when absent, derived from the environment. */
  server?: string;
}

/** Credentials read from a {@link CredentialSource}. */
export interface Credentials {
  server: string;
  token: string;
  caPem: string;
}

/**
 * The API server URL from `KUBERNETES_SERVICE_HOST`/`_PORT`, as in-cluster
 * clients build it; undefined when the host is unset.
 */
export function serverFromEnv(env: (name: string) => string | undefined): string | undefined {
  const host = env("KUBERNETES_SERVICE_HOST");
  if (!host) return undefined;
  const port = env("KUBERNETES_SERVICE_PORT") || "443";
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Reads and checks the token and CA; throws {@link InstallError} on anything missing. */
export async function readCredentials(
  src: CredentialSource,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Promise<Credentials> {
  const server = src.server ?? serverFromEnv(env);
  if (!server) {
    throw new InstallError(
      "no API server address: KUBERNETES_SERVICE_HOST is not set and --server was not given",
    );
  }
  if (!/^https?:\/\/[^/]+/.test(server)) {
    throw new InstallError(`API server address ${JSON.stringify(server)} is not an http(s) URL`);
  }
  const token = (await readSecret(src.tokenFile, "ServiceAccount token")).trim();
  if (token === "" || /\s/.test(token)) {
    throw new InstallError(`ServiceAccount token ${src.tokenFile} is empty or malformed`, {
      path: src.tokenFile,
    });
  }
  const caPem = await readSecret(src.caFile, "cluster CA");
  if (!caPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new InstallError(`cluster CA ${src.caFile} holds no PEM certificate`, {
      path: src.caFile,
    });
  }
  return { server, token, caPem };
}

async function readSecret(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${err})`;
    throw new InstallError(
      `${what} ${path} ${why}; is the ServiceAccount token mounted into the pod?`,
      { path },
    );
  }
}

/** The token of a kubeconfig this installer wrote; undefined when it is missing or not one. */
export async function kubeconfigToken(path: string): Promise<string | undefined> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(path)) as {
      users?: { user?: { token?: unknown } }[];
    };
    const token = doc.users?.[0]?.user?.token;
    return typeof token === "string" && token !== "" ? token : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The kubeconfig for `creds`, as JSON (also valid YAML): hydra's own
 * kubeconfig reader parses JSON without loading a YAML parser, which keeps
 * each exec of the meta-CNI fast. Deterministic: equal input, equal bytes.
 */
export function renderKubeconfig(creds: Credentials): Uint8Array {
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "hydra",
      cluster: {
        server: creds.server,
        "certificate-authority-data": Buffer.from(creds.caPem).toString("base64"),
      },
    }],
    users: [{ name: "hydra", user: { token: creds.token } }],
    contexts: [{ name: "hydra", context: { cluster: "hydra", user: "hydra" } }],
    "current-context": "hydra",
  };
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
}
