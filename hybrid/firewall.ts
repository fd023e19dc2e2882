/**
 * The nftables table of a hybrid network on a node, replaced as a whole in
 * one transaction on every sync:
 *
 * - **masquerade**: overlay pods reaching anything that is neither overlay
 *   nor this node's underlay block (the outside, the fabric's hosts) leave
 *   with the node's address; overlay addresses never appear on the fabric,
 *   which cannot route them back.
 * - **no way in from the fabric to the overlay**: a new connection arriving
 *   on the uplink for an overlay address is dropped unless it comes from
 *   this node's own underlay pods (whose route to the overlay is their
 *   node). Even a fabric router pointed at a node cannot reach overlay pods.
 * - **macvlan underlay**: the shim (see `shim.ts`) counts as a way in from
 *   the fabric too, and an `arp` table lets it answer ARP only from this
 *   node's underlay blocks, so the fabric keeps the uplink's MAC for the
 *   node's address.
 *
 * @module
 */

import { identifier, ifNameString, setText } from "../nft/syntax.ts";
import type { HybridDesired } from "./plan.ts";

/** The table's name for a network. */
export function firewallTable(network: string): string {
  return identifier(`hydra_hybrid_${network.replaceAll("-", "_")}`);
}

/** The nftables commands that (re)create the network's table. */
export function firewallText(d: HybridDesired): string {
  const table = `ip ${firewallTable(d.net.name)}`;
  const overlay = d.net.subnets.filter((s) => s.kind === "overlay").map((s) => s.cidr);
  const local = [...overlay, ...d.localBlocks.underlay];
  const arp = `arp ${firewallTable(d.net.name)}`;
  const macvlan = d.net.underlayAttachment === "macvlan";
  // The fabric reaches the node on the uplink, and on the shim too when a fabric host took the
  // shim's MAC for the node's address: both are the way in from the fabric.
  const fromFabric = macvlan
    ? `{ ${ifNameString(d.net.uplink)}, ${ifNameString(d.net.shim)} }`
    : ifNameString(d.net.uplink);
  const lines = [`add table ${table}`, `delete table ${table}`];
  lines.push(`add table ${arp}`, `delete table ${arp}`);
  if (macvlan) {
    // The shim hears the fabric's ARP requests as the uplink does; answering them too would
    // hand out the shim's MAC for the node's address. It answers only the node's own pods.
    lines.push(
      `table ${arp} {`,
      "  chain input {",
      "    type filter hook input priority filter; policy accept;",
      `    iifname ${ifNameString(d.net.shim)} ` +
        (d.localBlocks.underlay.length
          ? `arp saddr ip != ${setText(d.localBlocks.underlay)} `
          : "") +
        "drop",
      "  }",
      "}",
    );
  }
  lines.push(`table ${table} {`);
  if (overlay.length) {
    lines.push(
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      `    ip saddr ${setText(overlay)} oifname != ${ifNameString(d.net.device)} ` +
        `ip daddr != ${setText(local)} masquerade`,
      "  }",
      "  chain forward {",
      "    type filter hook forward priority filter; policy accept;",
      `    iifname ${fromFabric} ip daddr ${setText(overlay)} ct state new ` +
        (d.localBlocks.underlay.length ? `ip saddr != ${setText(d.localBlocks.underlay)} ` : "") +
        "drop",
      "  }",
    );
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

/** The commands removing the network's tables (when they exist). */
export function firewallRemoveText(network: string): string {
  return ["ip", "arp"].map((family) => {
    const table = `${family} ${firewallTable(network)}`;
    return `add table ${table}\ndelete table ${table}\n`;
  }).join("");
}
