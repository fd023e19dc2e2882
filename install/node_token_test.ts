import assert from "node:assert/strict";
import { InstallError } from "./error.ts";
import { nodeToken, type NodeTokenConfig, remainingSeconds, tokenClaims } from "./node_token.ts";

const CFG: NodeTokenConfig = {
  namespace: "hydra-system",
  name: "hydra-node",
  nodeName: "n1",
  ttlSeconds: 86400,
};

/** An unsigned JWT with these claims (the signature is never checked here). */
function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) =>
    btoa(JSON.stringify(o)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `${b64({ alg: "ES256" })}.${b64(claims)}.c2ln`;
}

function nodeJwt(exp: number, over: Record<string, unknown> = {}): string {
  return jwt({
    sub: "system:serviceaccount:hydra-system:hydra-node",
    exp,
    "kubernetes.io": { namespace: "hydra-system", node: { name: "n1", uid: "u" } },
    ...over,
  });
}

/** An API server nobody listens on: minting fails fast. */
const NOWHERE = { server: "https://127.0.0.1:1", token: "installer", caPem: "" };

Deno.test("a node token's claims: account, node and expiry", () => {
  assert.deepEqual(tokenClaims(nodeJwt(1000)), {
    sub: "system:serviceaccount:hydra-system:hydra-node",
    exp: 1000,
    node: "n1",
  });
  assert.equal(tokenClaims("not-a-jwt"), undefined);
  assert.equal(tokenClaims("a.!!!.c"), undefined);
  assert.equal(remainingSeconds(nodeJwt(1000), CFG, 400), 600);
  // Another account's or another node's token is not this config's.
  assert.equal(
    remainingSeconds(nodeJwt(1000, { sub: "system:serviceaccount:x:y" }), CFG, 0),
    undefined,
  );
  assert.equal(
    remainingSeconds(nodeJwt(1000, { "kubernetes.io": { node: { name: "n2" } } }), CFG, 0),
    undefined,
  );
});

Deno.test("a token with more than half its lifetime left is kept without asking the API", async () => {
  const now = 1_000_000;
  const current = nodeJwt(now + 50_000);
  assert.equal(
    await nodeToken(NOWHERE, CFG, current, () => assert.fail("no warning"), now),
    current,
  );
});

Deno.test("an ageing token is replaced; when the API cannot mint, a still valid one is kept and said", async () => {
  const now = 1_000_000;
  const ageing = nodeJwt(now + 3600);
  const kept: string[] = [];
  assert.equal(await nodeToken(NOWHERE, CFG, ageing, (w) => kept.push(w), now), ageing);
  assert.equal(kept.length, 1);
  assert.match(
    kept[0],
    /cannot mint the node kubeconfig's token .*keeping the node token, valid for 3600 s more/,
  );
  // An expiring one, or none, cannot stand in: the pass fails with the reason.
  for (const current of [nodeJwt(now + 30), undefined, nodeJwt(now + 50_000, { sub: "other" })]) {
    await assert.rejects(
      nodeToken(NOWHERE, CFG, current, () => {}, now),
      (err: unknown) => err instanceof InstallError && /hydra-install role/.test(err.message),
    );
  }
});
