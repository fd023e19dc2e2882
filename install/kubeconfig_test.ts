import assert from "node:assert/strict";
import { join } from "node:path";
import { InstallError } from "./error.ts";
import { readCredentials, renderKubeconfig, serverFromEnv } from "./kubeconfig.ts";

const CA = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

Deno.test("the API server address comes from the service environment, IPv6 bracketed", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.equal(serverFromEnv(env({})), undefined);
  assert.equal(
    serverFromEnv(env({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" })),
    "https://10.96.0.1:443",
  );
  assert.equal(serverFromEnv(env({ KUBERNETES_SERVICE_HOST: "fd00::1" })), "https://[fd00::1]:443");
});

Deno.test("credentials are read, trimmed and checked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = { tokenFile: join(dir, "token"), caFile: join(dir, "ca.crt"), server: "https://s" };
    await assert.rejects(readCredentials(src), /token .* does not exist/);
    await Deno.writeTextFile(src.tokenFile, "abc.def\n");
    await assert.rejects(readCredentials(src), /cluster CA .* does not exist/);
    await Deno.writeTextFile(src.caFile, "not pem");
    await assert.rejects(readCredentials(src), /holds no PEM certificate/);
    await Deno.writeTextFile(src.caFile, CA);
    assert.deepEqual(await readCredentials(src), {
      server: "https://s",
      token: "abc.def",
      caPem: CA,
    });
    await Deno.writeTextFile(src.tokenFile, "two words");
    await assert.rejects(readCredentials(src), InstallError);
    await assert.rejects(readCredentials({ ...src, server: "s:443" }), /not an http\(s\) URL/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the kubeconfig is JSON with the token and CA embedded; equal input, equal bytes", () => {
  const creds = { server: "https://10.96.0.1:443", token: "t0k", caPem: CA };
  const bytes = renderKubeconfig(creds);
  assert.deepEqual(renderKubeconfig(creds), bytes);
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  assert.equal(doc["current-context"], "hydra");
  assert.equal(doc.clusters[0].cluster.server, creds.server);
  assert.equal(atob(doc.clusters[0].cluster["certificate-authority-data"]), CA);
  assert.equal(doc.users[0].user.token, "t0k");
  assert.notDeepEqual(renderKubeconfig({ ...creds, token: "new" }), bytes);
});
