import { DEFAULT_NAD_PATH_ROOTS } from "./nad_paths.ts";
import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { isKubeMode, parseKubeModeSettings } from "./config.ts";

Deno.test("Kubernetes-mode settings: Multus's keys, defaults left to the resolver", () => {
  assert.equal(isKubeMode({ type: "hydra", delegates: [] }), false);
  assert.equal(isKubeMode({ type: "hydra", clusterNetwork: "cbr0" }), true);
  assert.deepEqual(parseKubeModeSettings({ clusterNetwork: "cbr0" }), {
    clusterNetwork: "cbr0",
    namespaceIsolation: false,
    apiTimeoutMs: 5000,
  });
  assert.deepEqual(
    parseKubeModeSettings({
      clusterNetwork: "/etc/cni/net.d/10-cbr0.conflist",
      kubeconfig: "/etc/k",
      readinessindicatorfile: "/run/ready",
      defaultNetworks: ["a"],
      confDir: "/c",
      namespaceIsolation: true,
      globalNamespaces: "default,shared",
      systemNamespaces: ["kube-system", "infra"],
      multusNamespace: "hydra",
      runtimeConfig: { portMappings: [] },
      apiTimeout: 2.5,
      nadPathRoots: { state: ["/data/cni"] },
    }),
    {
      clusterNetwork: "/etc/cni/net.d/10-cbr0.conflist",
      kubeconfig: "/etc/k",
      readinessIndicatorFile: "/run/ready",
      defaultNetworks: ["a"],
      confDir: "/c",
      namespaceIsolation: true,
      globalNamespaces: "default,shared",
      systemNamespaces: ["kube-system", "infra"],
      multusNamespace: "hydra",
      runtimeConfig: { portMappings: [] },
      apiTimeoutMs: 2500,
      nadPathRoots: { state: ["/data/cni"], logs: ["/var/log"], read: DEFAULT_NAD_PATH_ROOTS.read },
    },
  );
});

Deno.test("Kubernetes-mode settings: errors name the field", () => {
  const bad: [Record<string, unknown>, number, RegExp][] = [
    [
      { clusterNetwork: "c", nadPathRoots: { logs: ["log"] } },
      ErrorCode.InvalidNetworkConfig,
      /"nadPathRoots.logs" entry "log" is not an absolute path/,
    ],
    [{}, ErrorCode.InvalidNetworkConfig, /"clusterNetwork" is missing/],
    [{ clusterNetwork: 1 }, ErrorCode.DecodingFailure, /"clusterNetwork" must be a string/],
    [
      { clusterNetwork: "a", namespaceIsolation: "yes" },
      ErrorCode.DecodingFailure,
      /"namespaceIsolation"/,
    ],
    [
      { clusterNetwork: "a", defaultNetworks: "b" },
      ErrorCode.DecodingFailure,
      /"defaultNetworks" must be a list/,
    ],
    [
      { clusterNetwork: "a", apiTimeout: 0 },
      ErrorCode.InvalidNetworkConfig,
      /"apiTimeout" must be more than 0/,
    ],
    [
      { clusterNetwork: "a", runtimeConfig: [] },
      ErrorCode.DecodingFailure,
      /"runtimeConfig" must be an object/,
    ],
  ];
  for (const [conf, code, re] of bad) {
    assert.throws(
      () => parseKubeModeSettings(conf),
      (e: unknown) => e instanceof CniError && e.code === code && re.test(e.message),
    );
  }
});
