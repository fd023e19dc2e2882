/**
 * Property-based fuzzing of every parser hydra feeds with input it does not
 * control: CNI stdin and environment, conf lists, CNI_ARGS, the pod
 * annotations, NetworkAttachmentDefinitions and the older Network objects,
 * kubeconfigs, the router's node and networks files, the command lines of
 * every role, ttrpc frames and the NRI protobuf messages, netlink replies,
 * results read back from the cache. Inputs are fast-check's — random text,
 * JSON, bytes and objects with the keys each parser reads — and mutations
 * (cut, flipped, spliced) of valid samples, so most reach deep.
 *
 * The property: a parser returns, or throws its own documented error (a
 * CniError, a ProtocolError, a KubeconfigError, …). Anything else escaping
 * (a TypeError, a RangeError, a hang) is what would crash the role that
 * read it, and counts as a crash, with the input.
 *
 * @module
 */

import fc from "fast-check";
import { CniError } from "../../cni/errors.ts";
import { parseCniArgs } from "../../cni/args.ts";
import { decodeCacheEntry } from "../../cni/cache.ts";
import { parseConfList, parseNetworkConfig, parsePluginConf } from "../../cni/conf.ts";
import { parseResult } from "../../cni/convert.ts";
import { parseInvocation, parseStdinConfig } from "../../cni/env.ts";
import { parseMetaOptions } from "../../engine/config.ts";
import { parseKubeModeSettings } from "../../kube/config.ts";
import { KubeconfigError, kubeconfigFromText } from "../../kube/kubeconfig.ts";
import { checkNadPaths, DEFAULT_NAD_PATH_ROOTS, parseNadPathRoots } from "../../kube/nad_paths.ts";
import { legacyNetworkConf } from "../../kube/networks.ts";
import { defaultNetworkOverride, podNetworkSelections } from "../../kube/selection.ts";
import { InstallError } from "../../install/error.ts";
import { parseInstallArgs } from "../../install/options.ts";
import { loadHostLocalConfig } from "../../ipam/config.ts";
import { parseAddr } from "../../netlink/addr.ts";
import { parseLink } from "../../netlink/link.ts";
import { parseFdb, parseNeigh } from "../../netlink/neigh.ts";
import { parseRoute } from "../../netlink/route.ts";
import { ProtocolError } from "../../nri/errors.ts";
import type { DescMessage } from "@bufbuild/protobuf";
import {
  ConfigureRequestSchema,
  decodeNri,
  EmptySchema,
  encodeNri,
  NriEvent,
  PodSandboxSchema,
  RegisterPluginRequestSchema,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
} from "../../nri/messages.ts";
import { createDemux, encodeFrame } from "../../nri/mux.ts";
import { parseNriServeArgs, UsageError as NriUsageError } from "../../nri/options.ts";
import { samplePod } from "../../nri/testdata.ts";
import {
  createMessageParser,
  decodeRequest,
  decodeResponse,
  decodeStatus,
  encodeMessage,
  encodeRequest,
  MessageType,
} from "../../nri/ttrpc.ts";
import { ConfigError, parseRouterConfig } from "../../route/config.ts";
import { NodeListError, parseNodeList } from "../../route/nodes.ts";
import { parseRouteArgs, UsageError as RouteUsageError } from "../../route/options.ts";
import { DaemonUsageError, parseDaemonArgs } from "../../daemon/node_main.ts";
import type { ChaosReport } from "./report.ts";

const enc = new TextEncoder();

/** One parser under fuzzing. */
interface Target {
  name: string;
  input: fc.Arbitrary<unknown>;
  run: (input: unknown) => unknown;
  /** Errors the parser may throw (its own); anything else is a crash. */
  allowed: (err: unknown) => boolean;
}

const isCni = (e: unknown) => e instanceof CniError;
const isProtocol = (e: unknown) => e instanceof ProtocolError;
const nothing = () => false;

/** `bytes` cut, flipped, spliced: the damage that reaches past the first check. */
function mutated(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    fc.constantFrom(...samples),
    fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.constantFrom("flip", "cut", "insert", "dup")), {
      maxLength: 6,
    }),
  ).map(([sample, edits]) => {
    let b = Uint8Array.from(sample);
    for (const [at, value, op] of edits) {
      const i = b.length ? at % b.length : 0;
      if (op === "flip" && b.length) b[i] ^= value || 1;
      else if (op === "cut") b = b.subarray(0, i);
      else if (op === "insert") b = Uint8Array.from([...b.subarray(0, i), value, ...b.subarray(i)]);
      else if (b.length) b = Uint8Array.from([...b, ...b.subarray(i, i + value)]);
    }
    return b;
  });
}

/** Text: random, JSON of any shape, and mutations of valid samples. */
function text(samples: string[]): fc.Arbitrary<string> {
  const dec = new TextDecoder();
  return fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 200 }),
    fc.json({ maxDepth: 4 }),
    mutated(samples.map((s) => enc.encode(s))).map((b) => dec.decode(b)),
    fc.constantFrom(...samples),
  );
}

/** Bytes: random, and mutations of valid encodings. */
function bytes(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(fc.uint8Array({ maxLength: 512 }), mutated(samples));
}

/** A JSON value, often an object with the keys the parser reads (and their neighbours). */
function objectWith(keys: string[]): fc.Arbitrary<Record<string, unknown>> {
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.string({ maxLength: 40 }),
    fc.constantFrom("", "/", "..", "10.0.0.0/8", "eth0", "1.1.0", -1, 0, 1e21, null, true),
  );
  return fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 12 })), value, {
    maxKeys: keys.length + 2,
  });
}

const CONF = JSON.stringify({
  cniVersion: "1.1.0",
  name: "net",
  type: "bridge",
  bridge: "br0",
  ipam: { type: "host-local", ranges: [[{ subnet: "10.1.0.0/24" }]], dataDir: "/var/lib/cni/x" },
});
const LIST = JSON.stringify({
  cniVersion: "1.1.0",
  name: "net",
  plugins: [JSON.parse(CONF), { type: "tuning", mtu: 1400, capabilities: { mac: true } }],
});
const KUBECONFIG = JSON.stringify({
  apiVersion: "v1",
  kind: "Config",
  clusters: [{
    name: "c",
    cluster: { server: "https://10.0.0.1:6443", "insecure-skip-tls-verify": true },
  }],
  users: [{ name: "u", user: { token: "t" } }],
  contexts: [{ name: "x", context: { cluster: "c", user: "u", namespace: "ns" } }],
  "current-context": "x",
});
const NODES = JSON.stringify({
  nodes: [{
    name: "a",
    podCIDRs: ["10.244.1.0/24"],
    addresses: ["192.168.1.1"],
    annotations: { x: "y" },
  }],
});
const NETWORKS = "networks:\n  - { name: default, allowedCIDRs: [10.244.0.0/16], protocol: 202 }\n";
const RESULT = JSON.stringify({
  cniVersion: "1.1.0",
  interfaces: [{ name: "eth0", mac: "0a:58:0a:00:00:01", sandbox: "/var/run/netns/x" }],
  ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: { nameservers: ["10.0.0.10"] },
});

/** Flags each role's command line knows, for argument lists that reach past the first one. */
const FLAGS = [
  "--mode",
  "--bin-dir",
  "--conf-dir",
  "--kubeconfig",
  "--node-service-account",
  "--node-name",
  "--node-token-ttl",
  "--meta-json",
  "--interval",
  "--health-addr",
  "--listen",
  "--socket",
  "--allowed-cidrs",
  "--protocol",
  "--nad-path-roots",
  "--default-network",
  "--once",
  "--uninstall",
  "-h",
];

const args = fc.array(
  fc.oneof(
    fc.constantFrom(...FLAGS),
    fc.tuple(fc.constantFrom(...FLAGS), fc.string({ maxLength: 30 })).map(([f, v]) => `${f}=${v}`),
    fc.string({ maxLength: 30 }),
  ),
  { maxLength: 8 },
);

const sandboxSamples = [
  encodeNri(PodSandboxSchema, samplePod()),
  encodeNri(RunPodSandboxRequestSchema, { pod: samplePod() }),
  encodeNri(SynchronizeRequestSchema, { pods: [samplePod()], containers: [{}], more: false }),
  encodeNri(ConfigureRequestSchema, {
    config: "{}",
    runtimeName: "containerd",
    runtimeVersion: "2.1",
    registrationTimeout: 5000n,
    requestTimeout: 2000n,
    NRIVersion: "v0.12.0",
  }),
  encodeNri(StateChangeEventSchema, { event: NriEvent.STOP_POD_SANDBOX, pod: samplePod() }),
];
/** The NRI messages hydra decodes. */
const NRI_SCHEMAS: DescMessage[] = [
  PodSandboxSchema,
  RunPodSandboxRequestSchema,
  SynchronizeRequestSchema,
  ConfigureRequestSchema,
  RegisterPluginRequestSchema,
  StateChangeEventSchema,
  EmptySchema,
];
const ttrpcSamples = [
  encodeRequest({
    service: "nri.pkg.api.v1alpha1.Plugin",
    method: "RunPodSandbox",
    payload: sandboxSamples[1],
    timeoutNano: 0n,
    metadata: [],
  }),
];
const frameSamples = ttrpcSamples.map((r) =>
  encodeFrame(
    1,
    encodeMessage(1, MessageType.REQUEST, 0, r),
  )
);

/** Every parser, with its input and its own errors. */
const TARGETS: Target[] = [
  {
    name: "CNI stdin",
    input: text([CONF, LIST]).map((t) => enc.encode(t)),
    run: (b) => parseStdinConfig(b as Uint8Array),
    allowed: isCni,
  },
  {
    name: "CNI environment and stdin",
    input: fc.tuple(
      objectWith([
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
      ])
        .map((o) =>
          Object.fromEntries(
            Object.entries(o).map((
              [k, v],
            ) => [k, typeof v === "string" ? v : JSON.stringify(v) ?? ""]),
          )
        ),
      text([CONF]),
    ),
    run: (i) => {
      const [env, stdin] = i as [Record<string, string>, string];
      return parseInvocation(env, enc.encode(stdin));
    },
    allowed: isCni,
  },
  {
    name: "conf lists",
    input: text([LIST, CONF]).map((t) => enc.encode(t)),
    run: (b) => {
      parseConfList(b as Uint8Array, "fuzz");
      parsePluginConf(b as Uint8Array, "fuzz");
      return parseNetworkConfig(b as Uint8Array, "fuzz");
    },
    allowed: isCni,
  },
  {
    name: "CNI_ARGS",
    input: text(["IgnoreUnknown=1;K8S_POD_NAME=a;K8S_POD_NAMESPACE=b;IP=10.0.0.1,fd00::1"]),
    run: (t) => parseCniArgs(t as string),
    allowed: isCni,
  },
  {
    name: "pod network annotations",
    input: fc.tuple(
      text([
        "a,ns/b@net2,c",
        '[{"name":"b","namespace":"ns","interface":"x","ips":["10.1.0.9/24"],"mac":"0a:58:0a:00:00:09",' +
        '"default-route":["10.1.0.1"],"cni-args":{"k":"v"},"portMappings":[{"hostPort":1,"containerPort":2}]}]',
      ]),
      fc.string({ maxLength: 20 }),
    ),
    run: (i) => {
      const [value, ns] = i as [string, string];
      podNetworkSelections(
        { "k8s.v1.cni.cncf.io/networks": value, networks: value },
        ns || "default",
      );
      return defaultNetworkOverride({ "v1.multus-cni.io/default-network": value }, "kube-system");
    },
    allowed: isCni,
  },
  {
    name: "NetworkAttachmentDefinitions",
    input: text([LIST, CONF]).map((t) => enc.encode(t)),
    run: (b) =>
      checkNadPaths(parseNetworkConfig(b as Uint8Array, "nad"), DEFAULT_NAD_PATH_ROOTS, "nad"),
    allowed: isCni,
  },
  {
    name: "older Network objects",
    input: fc.tuple(fc.option(fc.string({ maxLength: 20 })), fc.option(text([CONF]))),
    run: (i) => {
      const [plugin, a] = i as [string | null, string | null];
      return legacyNetworkConf({
        metadata: { name: "n", namespace: "ns" },
        plugin: plugin ?? undefined,
        args: a ?? undefined,
      });
    },
    allowed: isCni,
  },
  {
    name: "meta-CNI and Kubernetes-mode conf",
    input: objectWith([
      "cacheDir",
      "binDir",
      "logFile",
      "logLevel",
      "delegateTimeout",
      "clusterNetwork",
      "apiTimeout",
      "namespaceIsolation",
      "defaultNetworks",
      "runtimeConfig",
      "nadPathRoots",
    ]),
    run: (o) => {
      parseMetaOptions(o as never);
      parseNadPathRoots((o as Record<string, unknown>).nadPathRoots);
      return parseKubeModeSettings(o as Record<string, unknown>);
    },
    allowed: isCni,
  },
  {
    name: "IPAM conf",
    input: fc.tuple(
      objectWith([
        "type",
        "subnet",
        "rangeStart",
        "rangeEnd",
        "gateway",
        "ranges",
        "routes",
        "dataDir",
        "resolvConf",
      ]),
      text(["IP=10.1.0.7"]),
    ),
    run: (i) => {
      const [ipam, cniArgs] = i as [Record<string, unknown>, string];
      return loadHostLocalConfig(
        { cniVersion: "1.1.0", name: "n", type: "x", ipam } as never,
        cniArgs,
      );
    },
    allowed: isCni,
  },
  {
    name: "results",
    input: text([RESULT]),
    run: (t) => {
      try {
        decodeCacheEntry(t as string);
      } catch (err) {
        // Documented: malformed JSON throws (SyntaxError); its callers take that as damage.
        if (!(err instanceof SyntaxError)) throw err;
      }
      let raw: unknown;
      try {
        raw = JSON.parse(t as string);
      } catch {
        return undefined;
      }
      return parseResult(raw);
    },
    allowed: isCni,
  },
  {
    name: "kubeconfig",
    input: text([KUBECONFIG]),
    run: (t) => kubeconfigFromText(t as string, "/nonexistent/fuzz.kubeconfig"),
    allowed: (e) => e instanceof KubeconfigError,
  },
  {
    name: "node list file",
    input: text([NODES]),
    run: (t) => parseNodeList(t as string, "fuzz"),
    allowed: (e) => e instanceof NodeListError,
  },
  {
    name: "router networks file",
    input: text([NETWORKS]),
    run: (t) => parseRouterConfig(t as string, "fuzz"),
    allowed: (e) => e instanceof ConfigError,
  },
  {
    name: "installer arguments",
    input: args,
    run: (a) => parseInstallArgs(a as string[]),
    allowed: (e) => e instanceof InstallError,
  },
  {
    name: "other roles' arguments",
    input: args,
    run: (a) => {
      const list = a as string[];
      for (
        const [parse, own] of [
          [parseRouteArgs, RouteUsageError],
          [parseNriServeArgs, NriUsageError],
          [(x: string[]) => parseDaemonArgs(x, new Map() as unknown as Deno.Env), DaemonUsageError],
        ] as const
      ) {
        try {
          parse(list);
        } catch (err) {
          if (!(err instanceof own)) throw err;
        }
      }
      return undefined;
    },
    allowed: nothing,
  },
  {
    name: "ttrpc frames",
    input: fc.tuple(bytes(frameSamples), fc.array(fc.nat(600), { maxLength: 4 })),
    run: (i) => {
      const [b, cuts] = i as [Uint8Array, number[]];
      const parser = createMessageParser(() => {});
      const demux = createDemux(new Map([[1, (chunk: Uint8Array) => parser.push(chunk)]]));
      let from = 0;
      for (const cut of [...cuts.map((c) => c % (b.length + 1)), b.length].sort((x, y) => x - y)) {
        demux.push(b.subarray(from, cut));
        from = cut;
      }
      return undefined;
    },
    allowed: isProtocol,
  },
  {
    name: "ttrpc messages",
    input: bytes(ttrpcSamples),
    run: (b) => {
      for (const decode of [decodeRequest, decodeResponse, decodeStatus]) {
        try {
          decode(b as Uint8Array);
        } catch (err) {
          if (!isProtocol(err)) throw err;
        }
      }
      return undefined;
    },
    allowed: nothing,
  },
  {
    name: "NRI protobuf messages",
    input: bytes(sandboxSamples),
    run: (b) => {
      for (const schema of NRI_SCHEMAS) {
        try {
          decodeNri(schema, b as Uint8Array);
        } catch (err) {
          if (!isProtocol(err)) throw err;
        }
      }
      return undefined;
    },
    allowed: nothing,
  },
  {
    name: "netlink replies",
    input: fc.uint8Array({ maxLength: 400 }),
    run: (b) => {
      const payload = b as Uint8Array;
      parseLink(payload);
      parseAddr(payload);
      parseRoute(payload);
      parseNeigh(payload);
      return parseFdb(payload);
    },
    allowed: nothing,
  },
];

/** A finding's input, short enough to read. */
function show(input: unknown): string {
  const s = JSON.stringify(
    input,
    (_k, v) =>
      v instanceof Uint8Array
        ? `bytes:${[...v.subarray(0, 64)].join(",")}`
        : typeof v === "bigint"
        ? `${v}n`
        : v,
  );
  return (s ?? String(input)).slice(0, 400);
}

/** Feeds `runs` inputs to every parser; crashes and inputs counted in `report`. */
export async function runFuzz(report: ChaosReport, runs: number, seed: number): Promise<void> {
  for (const [i, t] of TARGETS.entries()) {
    const inputs = fc.sample(t.input, { numRuns: runs, seed: seed + i });
    for (const [n, input] of inputs.entries()) {
      report.counts.fuzzInputs++;
      try {
        await t.run(input);
      } catch (err) {
        if (t.allowed(err)) continue;
        const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        // One finding per parser, error kind and place it was thrown from.
        const at = err instanceof Error ? (err.stack ?? "").split("\n")[1]?.trim() : "";
        report.findOnce(
          "crashes",
          `${t.name}|${err instanceof Error ? err.name : typeof err}|${at}`,
          "fuzz",
          `${t.name} threw ${what.slice(0, 200)} on input ${show(input)} (fast-check seed ${
            seed + i
          }, input ${n})`,
        );
      }
    }
  }
}

/** The parsers fuzzed, by name. */
export const FUZZ_TARGETS: readonly string[] = TARGETS.map((t) => t.name);
