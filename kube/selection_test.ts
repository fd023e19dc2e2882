import assert from "node:assert/strict";
import fc from "fast-check";
import { checkNamespaceAccess, parseGlobalNamespaces } from "./namespaces.ts";
import {
  DEFAULT_NETWORK_ANNOTATION,
  defaultNetworkOverride,
  interfaceNameProblem,
  type NetworkSelection,
  parseNetworkSelection,
  podNetworkSelections,
  SelectionError,
} from "./selection.ts";
import { ErrorCode } from "../cni/errors.ts";

function throwsSelection(fn: () => unknown, match: RegExp, element?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SelectionError, `expected SelectionError, got ${err}`);
    assert.equal(err.code, ErrorCode.InvalidNetworkConfig);
    assert.match(err.message, match);
    if (element !== undefined) assert.equal(err.element, element);
    return true;
  });
}

Deno.test("comma form: name, ns/name, name@ifname, ns/name@ifname, trimmed", () => {
  const got = parseNetworkSelection(
    " macvlan , other/sriov-a,br@blue ,  ns2 / vx @ east0 ",
    "pods",
  );
  assert.deepEqual(got, [
    { name: "macvlan", namespace: "pods" },
    { name: "sriov-a", namespace: "other" },
    { name: "br", namespace: "pods", interface: "blue" },
    { name: "vx", namespace: "ns2", interface: "east0" },
  ]);
});

Deno.test("comma form: repeats are separate attachments; '/name' and 'name@' default", () => {
  assert.deepEqual(parseNetworkSelection("a,a,/b,c@", "ns"), [
    { name: "a", namespace: "ns" },
    { name: "a", namespace: "ns" },
    { name: "b", namespace: "ns" },
    { name: "c", namespace: "ns" },
  ]);
});

Deno.test("comma form: every error names the element", () => {
  throwsSelection(() => parseNetworkSelection("a,x/y/z", "ns"), /element 2.*more than one "\/"/, 2);
  throwsSelection(() => parseNetworkSelection("a@b@c", "ns"), /element 1.*more than one "@"/, 1);
  throwsSelection(() => parseNetworkSelection("a,,b", "ns"), /element 2.*name is empty/, 2);
  throwsSelection(() => parseNetworkSelection("a,", "ns"), /element 2.*name is empty/, 2);
  throwsSelection(() => parseNetworkSelection("Mac", "ns"), /"Mac" must consist of lower case/);
  throwsSelection(() => parseNetworkSelection("-a", "ns"), /"-a" must consist/);
  throwsSelection(() => parseNetworkSelection("a-", "ns"), /"a-" must consist/);
  throwsSelection(() => parseNetworkSelection("a.b", "ns"), /"a\.b" must consist/);
  throwsSelection(() => parseNetworkSelection("NS/a", "ns"), /"NS" must consist/);
  throwsSelection(
    () => parseNetworkSelection("a@averyveryverylong", "ns"),
    /longer than 15 bytes/,
  );
  throwsSelection(() => parseNetworkSelection("a@x y", "ns"), /contains/);
  throwsSelection(() => parseNetworkSelection("a@x:1", "ns"), /contains/);
  throwsSelection(() => parseNetworkSelection("a@..", "ns"), /not allowed/);
});

Deno.test("JSON form: every field, mapped and validated", () => {
  const value = JSON.stringify([
    {
      name: "macvlan",
      namespace: "other",
      interface: "data0",
      ips: ["10.1.2.3/24", "fd00::5"],
      mac: "02:00:00:aa:bb:cc",
      "infiniband-guid": "c2:11:22:33:44:55:66:77",
      "default-route": ["10.1.2.1"],
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
      bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 },
      "cni-args": { foo: "bar", n: 1 },
      deviceID: "0000:03:00.1",
      "ipam-claim-reference": "claim-1",
      unknownKey: true,
    },
    { name: "plain" },
  ]);
  const got = parseNetworkSelection(value, "pods");
  assert.deepEqual(
    got,
    [
      {
        name: "macvlan",
        namespace: "other",
        interface: "data0",
        ips: ["10.1.2.3/24", "fd00::5"],
        mac: "02:00:00:aa:bb:cc",
        infinibandGuid: "c2:11:22:33:44:55:66:77",
        defaultRoute: ["10.1.2.1"],
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
        bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 },
        cniArgs: { foo: "bar", n: 1 },
        deviceId: "0000:03:00.1",
        ipamClaimReference: "claim-1",
      },
      { name: "plain", namespace: "pods" },
    ] satisfies NetworkSelection[],
  );
});

Deno.test("JSON form: legacy interfaceRequest, keys matched without case, null fields", () => {
  const got = parseNetworkSelection(
    '[{"Name":"a","INTERFACErequest":"old0"},{"name":"b","interface":"new0","interfaceRequest":"old0"},' +
      '{"name":"c","ips":null,"mac":null,"cni-args":null,"default-route":[]}]',
    "ns",
  );
  assert.deepEqual(got, [
    { name: "a", namespace: "ns", interface: "old0" },
    { name: "b", namespace: "ns", interface: "new0" },
    { name: "c", namespace: "ns", defaultRoute: [] },
  ]);
});

Deno.test("JSON form: detected by '[', '{' or '\"'; null and [] select nothing", () => {
  assert.deepEqual(parseNetworkSelection("[]", "ns"), []);
  assert.deepEqual(parseNetworkSelection(" null ", "ns"), [{ name: "null", namespace: "ns" }]);
  assert.deepEqual(parseNetworkSelection('[{"name":"x"}] ', "ns"), [{
    name: "x",
    namespace: "ns",
  }]);
  throwsSelection(() => parseNetworkSelection('"a"', "ns"), /must be a list, got a string/);
  throwsSelection(
    () => parseNetworkSelection('{"name":"a"}', "ns"),
    /must be a list, got an object/,
  );
  throwsSelection(() => parseNetworkSelection("[{name: a}]", "ns"), /not a valid JSON list/);
});

Deno.test("JSON form: every error names the element and the field", () => {
  const bad: [unknown, RegExp][] = [
    [null, /must be an object, got null/],
    ["a", /must be an object, got a string/],
    [{}, /"name" is missing or empty/],
    [{ name: 5 }, /"name" must be a string, got a number/],
    [{ name: "Upper" }, /"name" "Upper" is not a valid object name/],
    [{ name: "a/b" }, /not a valid object name/],
    [{ name: "a", namespace: "x.y" }, /"namespace" "x\.y" is not a valid namespace/],
    [{ name: "a", interface: "0123456789abcdef" }, /longer than 15 bytes/],
    [{ name: "a", interface: 3 }, /"interface" must be a string/],
    [{ name: "a", ips: "10.0.0.1" }, /"ips" must be a list of strings, got a string/],
    [{ name: "a", ips: [1] }, /"ips"\[0\] must be a string/],
    [{ name: "a", ips: ["10.0.0.300"] }, /"ips": "10\.0\.0\.300" is not an IP address or CIDR/],
    [{ name: "a", ips: ["10.0.0.1/33"] }, /not an IP address or CIDR/],
    [{ name: "a", mac: "02:00:00:00:00" }, /"mac": .* is not a MAC address/],
    [{ name: "a", "infiniband-guid": "zz" }, /"infiniband-guid": .* is not a valid GUID/],
    [{ name: "a", "default-route": ["10.0.0.1/24"] }, /"default-route": .* is not an IP address/],
    [{ name: "a", "default-route": "10.0.0.1" }, /"default-route" must be a list/],
    [{ name: "a", portMappings: {} }, /"portMappings" must be a list, got an object/],
    [{ name: "a", portMappings: [5] }, /"portMappings"\[0\] must be an object/],
    [
      { name: "a", portMappings: [{ hostPort: "80" }] },
      /"portMappings"\[0\]\.hostPort must be an integer/,
    ],
    [{ name: "a", portMappings: [{ hostPort: 1.5 }] }, /must be an integer/],
    [{ name: "a", portMappings: [{ hostPort: 1, protocol: 6 }] }, /protocol must be a string/],
    [{ name: "a", bandwidth: [] }, /"bandwidth" must be an object, got a list/],
    [{ name: "a", bandwidth: { ingressRate: "1" } }, /"bandwidth"\.ingressRate must be an integer/],
    [{ name: "a", "cni-args": [] }, /"cni-args" must be an object, got a list/],
    [{ name: "a", deviceID: 1 }, /"deviceID" must be a string/],
    [
      { name: "a", "ipam-claim-reference": "A B" },
      /"ipam-claim-reference" .* not a valid object name/,
    ],
  ];
  for (const [el, re] of bad) {
    throwsSelection(
      () => parseNetworkSelection(JSON.stringify([{ name: "ok" }, el]), "ns"),
      new RegExp(`element 2: .*${re.source}`),
      2,
    );
  }
});

Deno.test("MAC and GUID accept every form Go's ParseMAC does", () => {
  for (
    const mac of [
      "02:00:5e:00:53:01",
      "02-00-5E-00-53-01",
      "0200.5e00.5301",
      "02:00:5e:10:00:00:00:01",
      "0200.5e10.0000.0001",
      "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
    ]
  ) {
    assert.equal(parseNetworkSelection(JSON.stringify([{ name: "a", mac }]), "n")[0].mac, mac);
  }
  for (const mac of ["02:00:5e:00:53", "02:00-5e:00:53:01", "0200.5e00", "2:0:5e:0:53:1"]) {
    throwsSelection(() => parseNetworkSelection(JSON.stringify([{ name: "a", mac }]), "n"), /MAC/);
  }
});

Deno.test("podNetworkSelections: current annotation, then the older 'networks', then none", () => {
  assert.deepEqual(
    podNetworkSelections({ "k8s.v1.cni.cncf.io/networks": "a", networks: '[{"name":"b"}]' }, "ns"),
    { source: "networks", selections: [{ name: "a", namespace: "ns" }] },
  );
  assert.deepEqual(podNetworkSelections({ networks: '[{"name":"b"}]' }, "ns"), {
    source: "legacy",
    selections: [{ name: "b", namespace: "ns" }],
  });
  assert.deepEqual(podNetworkSelections({ "k8s.v1.cni.cncf.io/networks": "" }, "ns"), {
    source: "none",
    selections: [],
  });
  assert.deepEqual(podNetworkSelections(undefined, "ns"), { source: "none", selections: [] });
  throwsSelection(() => podNetworkSelections({ networks: "[" }, "ns"), /annotation networks:/);
});

Deno.test("default-network override: one network, namespace defaults to the conf's", () => {
  assert.equal(defaultNetworkOverride({}, "kube-system"), undefined);
  assert.deepEqual(
    defaultNetworkOverride({ [DEFAULT_NETWORK_ANNOTATION]: "calico" }, "kube-system"),
    {
      name: "calico",
      namespace: "kube-system",
    },
  );
  assert.deepEqual(
    defaultNetworkOverride({ [DEFAULT_NETWORK_ANNOTATION]: '[{"name":"c","namespace":"x"}]' }, "k"),
    { name: "c", namespace: "x" },
  );
  throwsSelection(
    () => defaultNetworkOverride({ [DEFAULT_NETWORK_ANNOTATION]: "a,b" }, "k"),
    /v1\.multus-cni\.io\/default-network: names 2 networks/,
  );
  throwsSelection(
    () => defaultNetworkOverride({ [DEFAULT_NETWORK_ANNOTATION]: "" }, "k"),
    /names no network/,
  );
});

Deno.test("namespace isolation: own namespace and global ones only", () => {
  const policy = { namespaceIsolation: true, globalNamespaces: parseGlobalNamespaces(undefined) };
  assert.deepEqual(policy.globalNamespaces, ["default"]);
  checkNamespaceAccess("team", { name: "a", namespace: "team" }, policy);
  checkNamespaceAccess("team", { name: "a", namespace: "default" }, policy);
  throwsSelection(
    () => checkNamespaceAccess("team", { name: "a", namespace: "other" }, policy, undefined, 3),
    /element 3: namespace isolation is on: pod in namespace "team" may not use network "other\/a"/,
    3,
  );
  const open = { namespaceIsolation: false, globalNamespaces: [] };
  checkNamespaceAccess("team", { name: "a", namespace: "other" }, open);
  const custom = {
    namespaceIsolation: true,
    globalNamespaces: parseGlobalNamespaces(" a, other "),
  };
  assert.deepEqual(custom.globalNamespaces, ["a", "other"]);
  checkNamespaceAccess("team", { name: "a", namespace: "other" }, custom);
});

Deno.test("interface names follow the kernel's rules", () => {
  assert.equal(interfaceNameProblem("net1"), undefined);
  assert.equal(interfaceNameProblem("123456789012345"), undefined);
  assert.match(interfaceNameProblem("1234567890123456") ?? "", /longer than 15/);
  assert.match(interfaceNameProblem("ééééééééé") ?? "", /longer than 15 bytes/);
  assert.match(interfaceNameProblem("") ?? "", /empty/);
});

Deno.test("property: 1,000 random annotation values never crash the parser", () => {
  // Strings built from the characters that steer the parser, free text, and JSON documents.
  const steering = fc.string({
    unit: fc.constantFrom(...'ab-/@, \t[]{}":.0Z\\é'),
    maxLength: 40,
  });
  const jsonish = fc.jsonValue().map((v) => JSON.stringify(v));
  const elements = fc.array(
    fc.dictionary(
      fc.constantFrom(
        "name",
        "namespace",
        "interface",
        "ips",
        "mac",
        "default-route",
        "portMappings",
        "bandwidth",
        "cni-args",
        "Name",
      ),
      fc.jsonValue(),
    ),
  ).map((v) => JSON.stringify(v));
  fc.assert(
    fc.property(fc.oneof(steering, fc.string(), jsonish, elements), (value) => {
      try {
        const got = parseNetworkSelection(value, "ns");
        for (const sel of got) {
          assert.equal(typeof sel.name, "string");
          assert.ok(sel.name.length > 0);
          assert.ok(sel.namespace.length > 0);
        }
      } catch (err) {
        if (!(err instanceof SelectionError)) throw err;
        assert.equal(err.code, ErrorCode.InvalidNetworkConfig);
      }
    }),
    { numRuns: 1000 },
  );
});
