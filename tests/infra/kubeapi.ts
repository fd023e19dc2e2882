/**
 * Just enough Kubernetes API access for the test handles: JSON requests over fetch with a client
 * certificate or bearer token, and kubeconfig files for kubectl and the product.
 *
 * @module
 */

import { stringify } from "yaml";

/** Credentials for the API server. */
export type KubeCredentials =
  | { kind: "cert"; certPem: string; keyPem: string }
  | { kind: "token"; token: string };

/** Where the API server is and how to trust it. */
export interface KubeEndpoint {
  /** https://127.0.0.1:<port> */
  server: string;
  /** PEM of the CA that signed the serving certificate. */
  caPem: string;
}

/** A decoded API response. */
export interface KubeResponse {
  status: number;
  /** Parsed JSON body (or the raw text when it is not JSON). */
  body: unknown;
}

/** A small JSON client bound to one identity; close it when done. */
export interface KubeApi {
  /** Sends a request; `body` is sent as JSON. Never throws on HTTP error statuses. */
  request(method: string, path: string, body?: unknown): Promise<KubeResponse>;
  /** Like request, but throws unless the status is 2xx (or listed in `okStatuses`). */
  must(method: string, path: string, body?: unknown, okStatuses?: number[]): Promise<unknown>;
  /** Releases the HTTP client. */
  close(): void;
}

/** Makes a {@link KubeApi} for an endpoint and identity. */
export function kubeApi(endpoint: KubeEndpoint, creds: KubeCredentials): KubeApi {
  const client = creds.kind === "cert"
    ? Deno.createHttpClient({ caCerts: [endpoint.caPem], cert: creds.certPem, key: creds.keyPem })
    : Deno.createHttpClient({ caCerts: [endpoint.caPem] });
  const headers: Record<string, string> = { accept: "application/json" };
  if (creds.kind === "token") headers.authorization = `Bearer ${creds.token}`;

  async function request(method: string, path: string, body?: unknown): Promise<KubeResponse> {
    const res = await fetch(endpoint.server + path, {
      method,
      client,
      headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Health endpoints answer plain text.
    }
    return { status: res.status, body: parsed };
  }

  return {
    request,
    async must(method, path, body, okStatuses = []) {
      const res = await request(method, path, body);
      if ((res.status < 200 || res.status > 299) && !okStatuses.includes(res.status)) {
        throw new Error(
          `${method} ${path}: HTTP ${res.status}: ${
            typeof res.body === "string" ? res.body : JSON.stringify(res.body)
          }`,
        );
      }
      return res.body;
    },
    close: () => client.close(),
  };
}

function base64(text: string): string {
  return btoa(text);
}

/** Renders a kubeconfig with one cluster, one user and one current context. */
export function renderKubeconfig(
  endpoint: KubeEndpoint,
  creds: KubeCredentials,
  name = "hydra-test",
  namespace?: string,
): string {
  const user = creds.kind === "cert"
    ? {
      "client-certificate-data": base64(creds.certPem),
      "client-key-data": base64(creds.keyPem),
    }
    : { token: creds.token };
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name,
      cluster: { server: endpoint.server, "certificate-authority-data": base64(endpoint.caPem) },
    }],
    users: [{ name, user }],
    contexts: [{
      name,
      context: { cluster: name, user: name, ...(namespace ? { namespace } : {}) },
    }],
    "current-context": name,
    preferences: {},
  });
}

/** Creates an object, treating "already exists" as success. */
export async function createIfMissing(api: KubeApi, path: string, body: unknown): Promise<void> {
  await api.must("POST", path, body, [409]);
}

/**
 * Creates a namespace (if missing) with what a controller manager would add and Pods need: the
 * `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (projected into service account
 * token volumes).
 */
export async function ensureNamespace(api: KubeApi, name: string, caPem: string): Promise<void> {
  await createIfMissing(api, "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  });
  await Promise.all([
    ensureServiceAccount(api, name, "default"),
    createIfMissing(api, `/api/v1/namespaces/${name}/configmaps`, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "kube-root-ca.crt", namespace: name },
      data: { "ca.crt": caPem },
    }),
  ]);
}

/** Creates a ServiceAccount if missing. */
export async function ensureServiceAccount(
  api: KubeApi,
  namespace: string,
  name: string,
): Promise<void> {
  await createIfMissing(api, `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace },
  });
}

/** Requests a bound token for a ServiceAccount through the TokenRequest API. */
export async function requestServiceAccountToken(
  api: KubeApi,
  namespace: string,
  name: string,
  expirationSeconds = 86400,
): Promise<string> {
  const res = await api.must(
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds },
    },
  ) as { status?: { token?: string } };
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}
