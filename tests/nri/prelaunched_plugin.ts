/**
 * A plugin process as the runtime launches it (`NRI_PLUGIN_SOCKET=3`,
 * `NRI_PLUGIN_NAME`, `NRI_PLUGIN_IDX` in the environment), for the
 * pre-launched plugin test: every hook call is printed as a JSON line.
 *
 * @module
 */

import { netnsPathOf, runNriPlugin } from "../../nri/stub.ts";

const print = (record: Record<string, unknown>) => console.log(JSON.stringify(record));

await runNriPlugin({
  onSynchronize: (pods) => Promise.resolve(print({ hook: "sync", pods: pods.map((p) => p.name) })),
  onRunPodSandbox: (pod) =>
    Promise.resolve(print({ hook: "run", pod: pod.name, netns: netnsPathOf(pod) })),
}, { log: () => {} });
print({ hook: "exit" });
