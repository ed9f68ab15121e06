import type { Readable } from 'node:stream';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import type { GatewayErrorClass } from '../proxy/upstream-error.ts';

/** Per-attempt timeouts (0 disables one). */
export interface AttemptTimeouts {
  /** From the request being sent to the response headers. */
  headersTimeoutMs: number;
  /** Longest silence between two response body chunks. */
  bodyTimeoutMs: number;
  /**
   * The whole attempt, from its start to the response's end: what is left of a gRPC call's
   * `grpc-timeout`, the client's bound; undefined for none. Its expiry is `deadline-exceeded`, which
   * never counts against the upstream. Honoured by the HTTP/2 transports (gRPC) and HTTP/1.1 ones
   * (gRPC-Web).
   */
  deadlineMs?: number;
  /** Upgrades only: once upgraded, a connection with no byte either way for this long is closed; 0 or undefined never. */
  websocketIdleTimeoutMs?: number;
}

/**
 * How one attempt ended: the response went to the client, or it failed before or while doing so.
 * `released` is set when the transport ends an attempt whose request it still holds, unsent (the
 * call's deadline passed, or the client left, while it waited for a connection): it resolves once
 * the transport has let go of the request and reported the pick, so that a concurrency slot can be
 * held until then. `unsent` is set when the transport dropped the request before writing any of it
 * to the instance, for a reason not the instance's (it waited in a queue for a connection or a
 * stream until the call's deadline passed or the client left; the gateway's own pool was full or
 * closed; the request's headers were refused before sending): the instance saw nothing, so the
 * attempt is none of its requests (nor are the request's bytes its bytes), while the route and the
 * service still count the request. A connect failure is the instance's attempt, never `unsent`.
 */
export type AttemptResult = { ok: true } | { ok: false; errorClass: GatewayErrorClass; responseStarted: boolean; error: Error; released?: Promise<void>; unsent?: true };

/** Told how an attempt started with `Transport.attemptThen` ended. */
export interface AttemptReceiver {
  attemptEnded(result: AttemptResult): void;
}

/**
 * One upstream protocol (HTTP/1.1, HTTPS, h2c, h2) towards one instance address with one set of
 * connection settings; it owns that address's connections. Chosen per attempt from the picked
 * instance's `protocol`.
 */
export interface Transport {
  /**
   * One attempt: sends `context.upstream` to the picked instance (with `body`, the client request,
   * when it has one) and streams the answer to `context.response` with back-pressure both ways.
   * Reports the outcome to `pick` exactly once and never rejects; the error class in a failed
   * result is the one classifier's (`classifyUpstreamError`).
   */
  attempt(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null): Promise<AttemptResult>;
  /**
   * `attempt` without a promise: `receiver.attemptEnded` is called exactly once with the result,
   * possibly before this call returns (a dispatch that fails at once). Optional; the proxy uses it
   * when present, sparing each attempt its promise.
   */
  attemptThen?(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null, receiver: AttemptReceiver): void;
  /**
   * One WebSocket handshake (HTTP/1.1, in cleartext or over TLS as the protocol says): on a 101 the
   * client gets the upstream's 101 and the two sockets are joined. Reports to `pick` exactly once,
   * never rejects; `context.response` must be a ServerResponse assigned to the client socket.
   */
  upgrade(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts): Promise<AttemptResult>;
  /**
   * Whether a WebSocket tunnel opened through it is still open (or has not yet recorded its end):
   * such a transport is not idle, however long since its last request, since its close at shutdown
   * is what waits for the tunnel's access log line. Left out: it opens none.
   */
  hasOpenTunnels?(): boolean;
  /**
   * Closes the connections, letting in-flight requests finish, for at most `graceMs` when given
   * (the gateway's shutdown; without it, as long as they take): past it they fail as `pool-closed`,
   * the gateway's own doing, which never counts against the instance. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

/** The connection settings a transport is built with, besides the address and the protocol. */
export interface TransportSettings {
  readonly connectTimeoutMs: number;
  /** TLS towards the instance; used by `https`, `h2` and `grpcs` only. */
  readonly tls: UpstreamTlsOptions;
  /** HTTP/1.1 connections per instance (a service's `concurrency.maxConnections`); the pool default when undefined. */
  readonly maxConnections?: number | undefined;
  /** Stands for `connectTimeoutMs`, `maxConnections` and `tls` in transport keys; equal settings, equal key. Computed once per policy. */
  readonly key: string;
}

/** TLS towards an upstream as plain values (PEM text). */
export interface UpstreamTlsOptions {
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** SNI and the name verified; the instance host when undefined (no SNI for an IP). */
  readonly serverName: string | undefined;
  readonly verify: boolean;
}
