/**
 * A small device plugin for tests (kubelet device plugin API v1beta1, from
 * the committed kubelet/proto/deviceplugin_v1beta1.proto): it registers a
 * resource with a real kubelet, lists a fixed set of healthy device IDs,
 * and records which IDs the kubelet allocates. It stands for an SR-IOV
 * device plugin: the kubelet hands those IDs to the pod, and the
 * pod-resources API reports them.
 *
 * The kubelet serves device plugins at a fixed path,
 * /var/lib/kubelet/device-plugins/kubelet.sock, whatever its root folder:
 * the kubelet started last on the machine owns it (and empties the folder
 * when it starts). Tests using this run one kubelet at a time.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { join } from "node:path";
import { repoRoot } from "../infra/peers.ts";

/** A running device plugin. */
export interface DevicePlugin {
  resourceName: string;
  /** Device IDs the kubelet allocated, in order. */
  allocated: string[];
  stop(): Promise<void>;
}

type Pkg = Record<string, grpc.GrpcObject | grpc.ServiceClientConstructor>;

function protoPackage(): Pkg {
  const def = loader.loadSync(join(repoRoot, "kubelet", "proto", "deviceplugin_v1beta1.proto"), {
    defaults: true,
    arrays: true,
  });
  return (grpc.loadPackageDefinition(def) as Pkg).v1beta1 as unknown as Pkg;
}

/** Where the kubelet serves device plugins (k8s.io/kubelet deviceplugin/v1beta1 DevicePluginPath). */
export const DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins";

/**
 * Serves the plugin in the kubelet's device-plugin folder and registers
 * `resourceName` with `deviceIds` with the kubelet there.
 */
export async function startDevicePlugin(
  resourceName: string,
  deviceIds: string[],
): Promise<DevicePlugin> {
  const pkg = protoPackage();
  const dir = DEVICE_PLUGIN_DIR;
  const endpoint = `hydra-test-${crypto.randomUUID().slice(0, 8)}.sock`;
  const socket = join(dir, endpoint);
  const allocated: string[] = [];
  const streams: grpc.ServerWritableStream<unknown, unknown>[] = [];
  const server = new grpc.Server();
  const devices = deviceIds.map((ID) => ({ ID, health: "Healthy" }));
  server.addService((pkg.DevicePlugin as grpc.ServiceClientConstructor).service, {
    GetDevicePluginOptions: (_: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    ListAndWatch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      streams.push(call);
      call.write({ devices });
    },
    GetPreferredAllocation: (_: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { containerResponses: [] }),
    Allocate: (
      call: grpc.ServerUnaryCall<{ containerRequests: { devicesIds: string[] }[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      for (const r of call.request.containerRequests) allocated.push(...r.devicesIds);
      cb(null, { containerResponses: call.request.containerRequests.map(() => ({})) });
    },
    PreStartContainer: (_: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `unix:${socket}`,
      grpc.ServerCredentials.createInsecure(),
      (e) => e ? reject(e) : resolve(),
    )
  );
  const Registration = pkg.Registration as grpc.ServiceClientConstructor;
  const client = new Registration(
    `unix:${join(dir, "kubelet.sock")}`,
    grpc.credentials.createInsecure(),
  );
  try {
    await new Promise<void>((resolve, reject) =>
      client.Register(
        { version: "v1beta1", endpoint, resourceName, options: {} },
        { deadline: Date.now() + 10_000 },
        (e: Error | null) => e ? reject(e) : resolve(),
      )
    );
  } catch (err) {
    server.forceShutdown();
    throw err;
  } finally {
    client.close();
  }
  return {
    resourceName,
    allocated,
    stop() {
      for (const s of streams) s.end();
      server.forceShutdown();
      return Deno.remove(socket).catch(() => {});
    },
  };
}
