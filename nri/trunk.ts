/**
 * One NRI connection end to end: a transport, the multiplexer over it, a
 * ttrpc server on one conn and a ttrpc client on the other. The plugin
 * serves on conn 1 and calls on conn 2; a runtime (or a test standing in for
 * one) does the opposite.
 *
 * The read loop starts at once, so requests arriving before the first call
 * returns (Configure may overtake the RegisterPlugin reply) are served.
 *
 * @module
 */

import { ConnectionClosedError, ProtocolError } from "./errors.ts";
import {
  createDemux,
  frameMessage,
  MAX_OUTBOUND_FRAME,
  PLUGIN_SERVICE_CONN,
  RUNTIME_SERVICE_CONN,
} from "./mux.ts";
import { createMessageParser } from "./ttrpc.ts";
import { createTtrpcClient, type TtrpcClient } from "./ttrpc_client.ts";
import {
  createTtrpcServer,
  type ServiceTable,
  type TtrpcServer,
  type TtrpcServerOptions,
} from "./ttrpc_server.ts";
import type { ByteTransport } from "./transport.ts";

/** Why a trunk ended. */
export interface TrunkEnd {
  /** "eof": the peer closed; "protocol": unrecoverable input; "closed": closed locally. */
  kind: "eof" | "protocol" | "closed";
  error?: Error;
}

/** Options of a trunk. */
export interface TrunkOptions {
  /** Conn served here; default 1 (the plugin side). */
  serveConn?: number;
  /** Conn called from here; default 2 (the plugin side). */
  callConn?: number;
  /** Largest inbound frame payload accepted (see `createDemux`). */
  maxInboundPayload?: number;
  /** Largest outbound frame, header included. */
  maxOutboundFrame?: number;
  /** Passed to the ttrpc server. */
  server?: TtrpcServerOptions;
}

/** A live connection. */
export interface Trunk {
  /** Calls the peer's service. */
  readonly client: TtrpcClient;
  /** Serves this side's service. */
  readonly server: TtrpcServer;
  /** Resolves once, when the connection has ended. */
  readonly ended: Promise<TrunkEnd>;
  /** True once ended. */
  readonly isEnded: boolean;
  /** Ends the connection; pending calls fail with `ConnectionClosedError`. */
  close(error?: Error): void;
}

/** Starts serving `services` over `transport` and returns the live trunk. */
export function openTrunk(
  transport: ByteTransport,
  services: ServiceTable,
  options: TrunkOptions = {},
): Trunk {
  const serveConn = options.serveConn ?? PLUGIN_SERVICE_CONN;
  const callConn = options.callConn ?? RUNTIME_SERVICE_CONN;
  const maxFrame = options.maxOutboundFrame ?? MAX_OUTBOUND_FRAME;
  let end: TrunkEnd | undefined;
  let resolveEnded!: (end: TrunkEnd) => void;
  const ended = new Promise<TrunkEnd>((resolve) => resolveEnded = resolve);

  function sender(connId: number): (message: Uint8Array) => Promise<void> {
    return (message) => {
      if (end) return Promise.reject(new ConnectionClosedError());
      return transport.write(frameMessage(connId, message, maxFrame));
    };
  }

  const client = createTtrpcClient(sender(callConn));
  const server = createTtrpcServer(sender(serveConn), services, options.server);
  const serverParser = createMessageParser(server.receive);
  const clientParser = createMessageParser(client.receive);
  const demux = createDemux(
    new Map([[serveConn, serverParser.push], [callConn, clientParser.push]]),
    { maxPayload: options.maxInboundPayload },
  );

  function finish(kind: TrunkEnd["kind"], error?: Error): void {
    if (end) return;
    end = { kind, error };
    server.close();
    client.close(error ?? new ConnectionClosedError(`connection ended (${kind})`));
    transport.close();
    resolveEnded(end);
  }

  (async () => {
    try {
      for await (const chunk of transport.chunks) {
        if (end) return;
        demux.push(chunk);
      }
      finish("eof");
    } catch (err) {
      // Framing cannot be recovered after bad input (or a fault in the
      // layers above): drop the connection, the caller reconnects.
      finish("protocol", err instanceof Error ? err : new ProtocolError("mux", String(err)));
    }
  })();

  return {
    client,
    server,
    ended,
    get isEnded() {
      return end !== undefined;
    },
    close(error?: Error) {
      finish("closed", error);
    },
  };
}
