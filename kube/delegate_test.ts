import assert from "node:assert/strict";
import {
  delegateCniArgs,
  delegateIfName,
  delegateRuntimeConfig,
  injectCniArgs,
  parseCniArgs,
  planDefaultRoutes,
  secondaryIfNames,
} from "./delegate.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { NetworkSelection } from "./selection.ts";

const pod = { namespace: "ns", name: "p", uid: "u-1", infraContainerId: "sb1" };

Deno.test("interface name: annotation, then CNI_IFNAME for the default network, then net<idx>", () => {
  assert.equal(
    delegateIfName({ name: "a", namespace: "n", interface: "x0" }, 2, false, "eth0"),
    "x0",
  );
  assert.equal(
    delegateIfName({ name: "a", namespace: "n", interface: "x0" }, 0, true, "eth0"),
    "x0",
  );
  assert.equal(delegateIfName(undefined, 0, true, "eth0"), "eth0");
  assert.equal(delegateIfName({ name: "a", namespace: "n" }, 1, false, "eth0"), "net1");
  assert.equal(delegateIfName({ name: "a", namespace: "n" }, 3, false, "eth0"), "net3");
});

Deno.test("runtimeConfig: selection requests overlay what the meta-CNI received, secondaries only", () => {
  const sel: NetworkSelection = {
    name: "m",
    namespace: "ns",
    ips: ["10.0.0.5/24"],
    mac: "02:00:00:00:00:01",
    infinibandGuid: "c2:11:22:33:44:55:66:77",
    portMappings: [{ hostPort: 80, containerPort: 8080 }],
    bandwidth: { ingressRate: 1, ingressBurst: 2, egressRate: 3, egressBurst: 4 },
  };
  const received = { portMappings: [{ hostPort: 1, containerPort: 2 }], dns: { x: 1 } };
  assert.deepEqual(delegateRuntimeConfig(received, sel, false), {
    portMappings: [{ hostPort: 80, containerPort: 8080 }],
    dns: { x: 1 },
    bandwidth: { ingressRate: 1, ingressBurst: 2, egressRate: 3, egressBurst: 4 },
    ips: ["10.0.0.5/24"],
    mac: "02:00:00:00:00:01",
    infinibandGUID: "c2:11:22:33:44:55:66:77",
  });
  // The default network gets what was received, even when an override carries requests.
  assert.deepEqual(delegateRuntimeConfig(received, sel, true), received);
  assert.deepEqual(delegateRuntimeConfig(undefined, undefined, false), {});
  // An empty list clears a received value.
  assert.deepEqual(
    delegateRuntimeConfig(received, { name: "m", namespace: "n", portMappings: [] }, false),
    { dns: { x: 1 } },
  );
});

Deno.test("runtimeConfig: deviceID brings the device-info file path", () => {
  const rc = delegateRuntimeConfig(
    {},
    { name: "s", namespace: "n", deviceId: "0000:03:00.1" },
    false,
    {
      containerId: "abc",
      ifName: "net1",
      delegateName: "n/s",
    },
  );
  assert.deepEqual(rc, {
    deviceID: "0000:03:00.1",
    CNIDeviceInfoFile: "/var/run/k8s.cni.cncf.io/devinfo/cni/n-s-abc_net1",
  });
});

Deno.test("CNI_ARGS: pod keys first, incoming merged, MAC/IP on ADD only", () => {
  const sel: NetworkSelection = {
    name: "m",
    namespace: "ns",
    mac: "02:00:00:00:00:01",
    ips: ["10.0.0.5/24", "fd00::5/64"],
  };
  assert.equal(
    delegateCniArgs(pod, "K8S_POD_NAME=p;FOO=a=b;bad", sel, "ADD"),
    "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=sb1;" +
      "K8S_POD_UID=u-1;K8S_POD_NAME=p;FOO=a=b;MAC=02:00:00:00:00:01;IP=10.0.0.5/24,fd00::5/64",
  );
  assert.equal(
    delegateCniArgs({ ...pod, uid: "" }, "K8S_POD_UID=u-2", sel, "DEL"),
    "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u-2",
  );
  assert.deepEqual(parseCniArgs(""), []);
  assert.deepEqual(parseCniArgs("A=1;B=;C"), [["A", "1"], ["B", ""]]);
});

Deno.test("cni-args merge into args.cni of a plugin and of every conflist plugin", () => {
  assert.deepEqual(
    injectCniArgs(
      { type: "bridge", args: { cni: { a: 1, b: 1 }, other: true } },
      { b: 2, c: 3 },
      "n/x",
    ),
    { type: "bridge", args: { cni: { a: 1, b: 2, c: 3 }, other: true } },
  );
  assert.deepEqual(
    injectCniArgs(
      { name: "l", plugins: [{ type: "a" }, { type: "b", args: {} }] },
      { k: "v" },
      "n/x",
    ),
    {
      name: "l",
      plugins: [{ type: "a", args: { cni: { k: "v" } } }, { type: "b", args: { cni: { k: "v" } } }],
    },
  );
  assert.throws(
    () => injectCniArgs({ type: "a", args: [] }, { k: 1 }, "n/x"),
    (e: unknown) =>
      e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig &&
      /network "n\/x": "args" is not an object/.test(e.message),
  );
  assert.throws(
    () => injectCniArgs({ plugins: [1] }, { k: 1 }, "n/x"),
    /plugins\[0\] is not an object/,
  );
  assert.throws(
    () => injectCniArgs({ type: "a", args: { cni: "x" } }, { k: 1 }, "n/x"),
    /"args\.cni" is not an object/,
  );
});

Deno.test("default routes: nothing asked, one gateway per family, ECMP refused", () => {
  assert.equal(planDefaultRoutes([undefined, undefined]), undefined);
  assert.deepEqual(planDefaultRoutes([undefined, ["10.0.0.1", "fd00::1"], []]), [
    { removeDefaultRoutes: true, gateways: [] },
    { removeDefaultRoutes: true, gateways: ["10.0.0.1", "fd00::1"] },
    { removeDefaultRoutes: true, gateways: [] },
  ]);
  assert.throws(
    () => planDefaultRoutes([["10.0.0.1"], ["10.1.0.1"]]),
    (e: unknown) =>
      e instanceof CniError && e.code === 7 && /2 IPv4 and 0 IPv6.*no ECMP/.test(e.message),
  );
  assert.throws(() => planDefaultRoutes([["fd00::1", "fd01::1"]]), /0 IPv4 and 2 IPv6/);
  // IPv4-mapped IPv6 counts as IPv4, as in Go.
  assert.throws(() => planDefaultRoutes([["10.0.0.1"], ["::ffff:10.0.0.2"]]), /2 IPv4/);
});

Deno.test("secondaryIfNames: net<position> from `first` unless the element names one", () => {
  assert.deepEqual(
    secondaryIfNames([
      { name: "a", namespace: "n" },
      { name: "b", namespace: "n", interface: "data0" },
      { name: "a", namespace: "n" },
    ]),
    ["net1", "data0", "net3"],
  );
  assert.deepEqual(secondaryIfNames([{ name: "a", namespace: "n" }], 3), ["net3"]);
  assert.throws(
    () => secondaryIfNames([{ name: "a", namespace: "n", interface: "eth0" }]),
    /network "a": interface "eth0" belongs to the pod's default network/,
  );
  assert.throws(
    () =>
      secondaryIfNames([
        { name: "a", namespace: "n", interface: "x" },
        { name: "b", namespace: "n", interface: "x" },
      ]),
    /networks "a" and "b" both ask for interface "x"/,
  );
});
