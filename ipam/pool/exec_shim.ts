/**
 * The exec'd side of `hydra-pool` before anything else is loaded: when the
 * node daemon answers on the config's `ipam.daemonSocket`, the process only
 * forwards its CNI_* variables and stdin and prints what the daemon's run
 * of the plugin printed — a few small modules instead of the plugin path.
 * It declines (undefined) whenever the plugin path must decide: a command
 * other than ADD, DEL or CHECK, a config that is not a JSON object with an
 * `ipam` object, `daemonSocket: ""`, CNI_NETNS_OVERRIDE set, or no daemon
 * listening. The plugin then runs here, as without this shim.
 *
 * @module
 */

import {
  type EnvLookup,
  forwardInvocation,
  isForwardedCommand,
  type ShimOutput,
} from "../../daemonclient/forward.ts";
import {
  type CniCommand,
  DEFAULT_DAEMON_SOCKET,
  POOL_PLUGIN,
} from "../../daemonclient/protocol.ts";

/** The name this role is invoked as. */
export const POOL_ROLE = POOL_PLUGIN;

/** Default `ipam.apiTimeout` (seconds) plus the daemon's margin. */
const DEFAULT_WAIT_S = 10 + 2;

/** Hands the invocation to the node daemon; undefined when the plugin path must run it. */
export async function poolViaDaemon(
  env: EnvLookup,
  stdin: Uint8Array,
): Promise<ShimOutput | undefined> {
  const command = env("CNI_COMMAND");
  if (!isForwardedCommand(command) || env("CNI_NETNS_OVERRIDE") !== undefined) return undefined;
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
  const ipam = (config as { ipam?: unknown } | null)?.ipam;
  if (typeof ipam !== "object" || ipam === null || Array.isArray(ipam)) return undefined;
  const { daemonSocket, apiTimeout } = ipam as { daemonSocket?: unknown; apiTimeout?: unknown };
  if (daemonSocket === "" || (daemonSocket !== undefined && typeof daemonSocket !== "string")) {
    return undefined;
  }
  const wait = typeof apiTimeout === "number" && apiTimeout > 0 ? apiTimeout + 2 : DEFAULT_WAIT_S;
  const target = {
    command: command as CniCommand,
    socket: (daemonSocket as string | undefined) ?? DEFAULT_DAEMON_SOCKET,
    timeoutMs: wait * 1000,
    config: config as Record<string, unknown>,
  };
  return await forwardInvocation(env, target, POOL_ROLE);
}
