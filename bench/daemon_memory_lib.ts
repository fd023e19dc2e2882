/**
 * Pod objects shaped like those a node runs, for the memory benchmarks: a
 * Deployment's pod with two containers (env, mounts, probes, resources),
 * its labels and owner, and a status as the kubelet writes it. A cache
 * holding such pods holds what a real node's cache would, not a toy.
 *
 * @module
 */

/** A pod manifest (with status, to PUT on the status subresource once created). */
export interface FatPod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: Record<string, unknown>[];
    resourceVersion?: string;
  };
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
}

function container(name: string, i: number): Record<string, unknown> {
  return {
    name,
    image: `registry.example/team/${name}:1.${i % 7}.0`,
    args: ["--config=/etc/app/config.yaml", "--port=8080", "--log-format=json"],
    env: Array.from({ length: 8 }, (_, k) => ({ name: `APP_SETTING_${k}`, value: `value-${k}` })),
    ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
    volumeMounts: [
      { name: "config", mountPath: "/etc/app" },
      { name: "kube-api-access", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" },
    ],
    readinessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 10 },
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
    imagePullPolicy: "IfNotPresent",
  };
}

function containerStatus(name: string, i: number): Record<string, unknown> {
  return {
    name,
    ready: true,
    restartCount: 0,
    image: `registry.example/team/${name}:1.${i % 7}.0`,
    imageID: `registry.example/team/${name}@sha256:${"0123456789abcdef".repeat(4)}`,
    containerID: `containerd://${"fedcba9876543210".repeat(4)}`,
    started: true,
    state: { running: { startedAt: "2026-01-01T00:00:00Z" } },
  };
}

/** The i-th pod named `name`, bound to `nodeName`, selecting `networks` (the annotation). */
export function fatPod(
  namespace: string,
  name: string,
  nodeName: string,
  i = 0,
  networks = "blue,green",
): FatPod {
  const condition = (type: string) => ({
    type,
    status: "True",
    lastProbeTime: null,
    lastTransitionTime: "2026-01-01T00:00:00Z",
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: { app: "web", "pod-template-hash": "5d8f9c7b6d", tier: "frontend" },
      annotations: {
        "k8s.v1.cni.cncf.io/networks": networks,
        "prometheus.io/scrape": "true",
      },
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: "web-5d8f9c7b6d",
        uid: "00000000-0000-4000-8000-000000000001",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    spec: {
      nodeName,
      containers: [container("app", i), container("sidecar", i)],
      volumes: [
        { name: "config", configMap: { name: "web-config" } },
        {
          name: "kube-api-access",
          projected: { sources: [{ serviceAccountToken: { path: "token" } }] },
        },
      ],
      tolerations: [
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
      ],
    },
    status: {
      phase: "Running",
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map(condition),
      hostIP: "192.0.2.10",
      podIP: `10.244.${(i >> 8) & 255}.${i & 255}`,
      podIPs: [{ ip: `10.244.${(i >> 8) & 255}.${i & 255}` }],
      startTime: "2026-01-01T00:00:00Z",
      containerStatuses: [containerStatus("app", i), containerStatus("sidecar", i)],
      qosClass: "Burstable",
    },
  };
}
