/**
 * DRA benchmark: time from Pod creation to its sandbox running with a
 * claimed host NIC, against the same pods without claims, and the memory
 * of hydra's node processes (bench/dra_lib.ts says how). Prints one JSON
 * document on stdout, progress on stderr:
 *
 *   {"pods": 50, "claimedMs": {"p50": …, "p99": …},
 *    "plainMs": {"p50": …, "p99": …}, "rssMiB": …}
 *
 * Target: a claimed NIC adds at most 50 ms at p99.
 *
 * Usage: deno run -A bench/dra.ts [--pods N] [--warmup N] [--nics N]
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runDraBench } from "./dra_lib.ts";
import { havePeers } from "../tests/infra/peers.ts";

function count(v: string | undefined, min: number): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new Error(`not a whole number ≥ ${min}: ${v}`);
  return x;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string", default: "50" },
      warmup: { type: "string", default: "3" },
      nics: { type: "string", default: "4" },
    },
  });
  if (Deno.uid() !== 0 || !havePeers("kubelet", "kube-apiserver", "etcd", "containerd")) {
    console.log(JSON.stringify({ bench: "dra", skipped: "needs root and the built peers" }));
    Deno.exit(0);
  }
  const result = await runDraBench({
    pods: count(values.pods, 1),
    warmup: count(values.warmup, 0),
    nics: count(values.nics, 1),
    progress: (msg) => console.error(`[bench dra] ${msg}`),
  });
  console.log(JSON.stringify(result));
}
