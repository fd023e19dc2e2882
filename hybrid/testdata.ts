/**
 * Fixtures of the hybrid unit tests: one network with an overlay and an
 * underlay subnet, and nodes carrying blocks of both.
 *
 * @module
 */

import type { NodeInfo } from "../route/nodes.ts";
import { parseHybridNetwork } from "../hybridnet/model.ts";

/** The raw form of the test network. */
export const RAW_NET = {
  name: "hy",
  vni: 7000,
  uplink: "br-fab",
  subnets: [
    { name: "ov", kind: "overlay", cidr: "10.250.0.0/16", blockSize: 24 },
    {
      name: "fab",
      kind: "underlay",
      cidr: "192.168.50.0/24",
      gateway: "192.168.50.1",
      start: "192.168.50.64",
      end: "192.168.50.191",
      blockSize: 28,
    },
  ],
};

/** The parsed test network. */
export const NET = parseHybridNetwork(RAW_NET);

/** Node n: fabric address 192.168.50.(10+n), blocks 10.250.n.0/24 and a /28 of the fabric. */
export function node(n: number, blocks?: string): NodeInfo {
  return {
    name: `node${n}`,
    podCIDRs: [],
    internalIPs: [`192.168.50.${10 + n}`],
    annotations: {
      "hydra.clusternet.io/hy.cidr": blocks ??
        `10.250.${n}.0/24,192.168.50.${64 + 16 * (n - 1)}/28`,
    },
  };
}
