import assert from "node:assert/strict";
import { BadRequestError, validateRequest } from "./requests.ts";

const poolConfig = {
  cniVersion: "1.0.0",
  name: "blue",
  type: "bridge",
  ipam: { type: "hydra-pool", range: "10.40.0.0/22" },
};

/** A hydra-pool ADD as the exec'd hydra-pool sends it. */
function poolRequest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    op: "cni",
    command: "ADD",
    containerId: "c1",
    netns: "/var/run/netns/p1",
    ifName: "net1",
    cniArgs: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
    network: "blue",
    plugin: "hydra-pool",
    config: poolConfig,
    timeoutMs: 12_000,
    ...extra,
  };
}

Deno.test("a hydra-pool request carries its IPAM config, and only a hydra-pool one", () => {
  assert.equal(validateRequest(poolRequest()).op, "cni");
  const refused: [Record<string, unknown>, RegExp][] = [
    [poolRequest({ config: undefined }), /"config" must be an object/],
    [poolRequest({ config: "{}" }), /"config" must be an object/],
    [poolRequest({ config: { ...poolConfig, ipam: { type: "host-local" } } }), /ipam.type/],
    [poolRequest({ config: { ...poolConfig, ipam: undefined } }), /ipam.type/],
    [poolRequest({ network: "red" }), /"config.name" is not "network"/],
    [poolRequest({ confDigest: `sha256:${"0".repeat(64)}` }), /its "config" only/],
    [poolRequest({ runtimeConfig: {} }), /its "config" only/],
    // The same checks of the invocation's arguments as a meta-CNI request's.
    [poolRequest({ command: "GC" }), /"command"/],
    [poolRequest({ netns: "relative" }), /"netns"/],
    [poolRequest({ ifName: "a/b" }), /./],
    [poolRequest({ env: { CNI_PATH: "/tmp" } }), /"env" is not accepted/],
    [poolRequest({ stdin: "{}" }), /"stdin" is not accepted/],
  ];
  for (const [req, why] of refused) {
    assert.throws(
      () => validateRequest(req),
      (e) => e instanceof BadRequestError && why.test(e.message),
    );
  }
});

Deno.test("a meta-CNI request never carries a config: the daemon reads the node's own", () => {
  const req = poolRequest({
    plugin: "hydra",
    config: poolConfig,
    confDigest: `sha256:${"0".repeat(64)}`,
  });
  assert.throws(() => validateRequest(req), /"config" is accepted only for hydra-pool/);
  const { config: _, ...named } = req;
  assert.equal(validateRequest(named).op, "cni");
});
