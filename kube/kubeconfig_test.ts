import assert from "node:assert/strict";
import {
  fileTokenSource,
  inClusterConnection,
  KubeconfigError,
  kubeconfigFromText,
  loadKubeconfig,
} from "./kubeconfig.ts";

const CA = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";
const b64 = (s: string) => btoa(s);

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hydra-kubeconfig-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function rejectsConfig(p: Promise<unknown>, re: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof KubeconfigError, `expected KubeconfigError, got ${err}`);
    assert.match(err.message, re);
    return true;
  });
}

Deno.test("YAML kubeconfig: current context, inline CA, client cert and key", async () => {
  const text = `
apiVersion: v1
kind: Config
current-context: admin@test
clusters:
- name: other
  cluster: {server: "https://other:1"}
- name: test
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: ${b64(CA)}
contexts:
- name: admin@test
  context: {cluster: test, user: admin, namespace: team}
users:
- name: admin
  user:
    client-certificate-data: ${b64(CERT)}
    client-key-data: ${b64(KEY)}
`;
  const conn = await kubeconfigFromText(text, "/x/admin.kubeconfig");
  assert.equal(conn.server, "https://127.0.0.1:6443");
  assert.deepEqual(conn.caCerts, [CA]);
  assert.equal(conn.clientCert, CERT);
  assert.equal(conn.clientKey, KEY);
  assert.equal(conn.namespace, "team");
  assert.equal(conn.tokenSource, undefined);
  assert.equal(conn.source, "/x/admin.kubeconfig");
});

Deno.test("JSON kubeconfig: files relative to the kubeconfig, token file, explicit context", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/pki`);
    await Deno.writeTextFile(`${dir}/pki/ca.crt`, CA);
    await Deno.writeTextFile(`${dir}/token`, "tok-1\n");
    const file = `${dir}/hydra.kubeconfig`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        "current-context": "missing",
        clusters: [{
          name: "c",
          cluster: { server: "https://[::1]:6443", "certificate-authority": "pki/ca.crt" },
        }],
        contexts: [{ name: "sa", context: { cluster: "c", user: "u" } }],
        users: [{ name: "u", user: { tokenFile: "token" } }],
      }),
    );
    const conn = await loadKubeconfig(file, "sa");
    assert.equal(conn.server, "https://[::1]:6443");
    assert.deepEqual(conn.caCerts, [CA]);
    assert.equal(await conn.tokenSource!.token(), "tok-1");
    // Rotation: re-read after invalidate().
    await Deno.writeTextFile(`${dir}/token`, "tok-2");
    assert.equal(await conn.tokenSource!.token(), "tok-1");
    conn.tokenSource!.invalidate();
    assert.equal(await conn.tokenSource!.token(), "tok-2");
  });
});

Deno.test("inline token and data win over files; plain http is allowed", async () => {
  const conn = await kubeconfigFromText(
    JSON.stringify({
      "current-context": "c",
      clusters: [{ name: "c", cluster: { server: "http://127.0.0.1:8080" } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      users: [{ name: "u", user: { token: "abc", tokenFile: "/nonexistent" } }],
    }),
    "/k",
  );
  assert.equal(await conn.tokenSource!.token(), "abc");
  assert.equal(conn.caCerts, undefined);
});

Deno.test("errors name the file and the field", async () => {
  const base = {
    "current-context": "c",
    clusters: [{ name: "c", cluster: { server: "https://h:1" } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
    users: [{ name: "u", user: {} }],
  };
  const variant = (patch: (d: typeof base & Record<string, unknown>) => void) => {
    const d = structuredClone(base) as typeof base & Record<string, unknown>;
    patch(d);
    return JSON.stringify(d);
  };
  await rejectsConfig(kubeconfigFromText("a: [", "/f"), /kubeconfig \/f: not valid YAML or JSON/);
  await rejectsConfig(kubeconfigFromText("- 1", "/f"), /not a kubeconfig/);
  await rejectsConfig(
    kubeconfigFromText(
      variant((d) => delete (d as Record<string, unknown>)["current-context"]),
      "/f",
    ),
    /kubeconfig \/f: current-context: is not set/,
  );
  await rejectsConfig(
    kubeconfigFromText(variant((d) => (d["current-context"] = "nope")), "/f"),
    /\/f: contexts: no entry named "nope"/,
  );
  await rejectsConfig(
    kubeconfigFromText(variant((d) => (d.clusters[0].cluster = { server: "" })), "/f"),
    /clusters\[0\] \("c"\)\.cluster\.server: is missing/,
  );
  await rejectsConfig(
    kubeconfigFromText(variant((d) => (d.clusters[0].cluster = { server: "h:1" })), "/f"),
    /cluster\.server: "h:1" is not an http\(s\) URL/,
  );
  await rejectsConfig(
    kubeconfigFromText(
      variant((
        d,
      ) => (d.clusters[0].cluster = {
        server: "https://h",
        "certificate-authority": "/no/ca",
      } as never)),
      "/f",
    ),
    /cluster\.certificate-authority: cannot read \/no\/ca/,
  );
  await rejectsConfig(
    kubeconfigFromText(
      variant((
        d,
      ) => (d.clusters[0].cluster = {
        server: "https://h",
        "certificate-authority-data": "%%%",
      } as never)),
      "/f",
    ),
    /certificate-authority-data: is not valid base64/,
  );
  await rejectsConfig(
    kubeconfigFromText(
      variant((
        d,
      ) => (d.clusters[0].cluster = {
        server: "https://h",
        "insecure-skip-tls-verify": true,
      } as never)),
      "/f",
    ),
    /insecure-skip-tls-verify: is not supported/,
  );
  await rejectsConfig(
    kubeconfigFromText(
      variant((d) => (d.users[0].user = { exec: { command: "x" } } as never)),
      "/f",
    ),
    /users\[0\] \("u"\)\.user\.exec: is not supported/,
  );
  await rejectsConfig(
    kubeconfigFromText(
      variant((d) => (d.users[0].user = { "client-certificate-data": b64(CERT) } as never)),
      "/f",
    ),
    /user\.client-key: is missing/,
  );
  await rejectsConfig(
    kubeconfigFromText(variant((d) => (d.users[0].user = { token: 5 } as never)), "/f"),
    /user\.token: must be a string/,
  );
  await rejectsConfig(
    loadKubeconfig("/nonexistent/kc"),
    /kubeconfig \/nonexistent\/kc: cannot read/,
  );
});

Deno.test("token file errors name the field that pointed at it", async () => {
  const conn = await kubeconfigFromText(
    JSON.stringify({
      "current-context": "c",
      clusters: [{ name: "c", cluster: { server: "https://h" } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      users: [{ name: "u", user: { tokenFile: "/nonexistent/token" } }],
    }),
    "/etc/k",
  );
  await rejectsConfig(
    conn.tokenSource!.token(),
    /\/etc\/k: users\[0\] \("u"\)\.user\.tokenFile: cannot read token file/,
  );
});

Deno.test("in-cluster: service env, ServiceAccount files, IPv6 host, token rotation", async () => {
  await withDir(async (dir) => {
    const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
    assert.equal(await inClusterConnection(env({}), dir), undefined);
    await rejectsConfig(
      inClusterConnection(env({ KUBERNETES_SERVICE_HOST: "10.96.0.1" }), dir),
      /in-cluster: KUBERNETES_SERVICE_PORT: is not set/,
    );
    await rejectsConfig(
      inClusterConnection(
        env({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }),
        dir,
      ),
      /in-cluster: cannot read .*ca\.crt/,
    );
    await Deno.writeTextFile(`${dir}/ca.crt`, CA);
    await Deno.writeTextFile(`${dir}/token`, "sa-1");
    await Deno.writeTextFile(`${dir}/namespace`, "hydra-system\n");
    const conn = await inClusterConnection(
      env({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }),
      dir,
    );
    assert.ok(conn);
    assert.equal(conn.server, "https://[fd00::1]:443");
    assert.deepEqual(conn.caCerts, [CA]);
    assert.equal(conn.namespace, "hydra-system");
    assert.equal(await conn.tokenSource!.token(), "sa-1");
    await Deno.writeTextFile(`${dir}/token`, "sa-2");
    conn.tokenSource!.invalidate();
    assert.equal(await conn.tokenSource!.token(), "sa-2");
  });
});

Deno.test("file token source re-reads on its own after a minute", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/t`, "one");
    const realNow = Date.now;
    let now = realNow();
    Date.now = () => now;
    try {
      const src = fileTokenSource(`${dir}/t`);
      assert.equal(await src.token(), "one");
      await Deno.writeTextFile(`${dir}/t`, "two");
      now += 30_000;
      assert.equal(await src.token(), "one");
      now += 31_000;
      assert.equal(await src.token(), "two");
    } finally {
      Date.now = realNow;
    }
  });
});
