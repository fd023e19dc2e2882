/** Old name of `parseIpNet` in `netlink/ip.ts`, still imported by ipam/kube_node.ts. @module */
export { parseIpNet as parseCidr } from "../netlink/ip.ts";
