import type { Readable } from 'node:stream';
import { isIP } from 'node:net';
import { Pool, type buildConnector } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptReceiver, AttemptResult, AttemptTimeouts, Transport, UpstreamTlsOptions } from './transport.ts';
import { dispatchAttempt, dispatchAttemptThen } from './transport-http1-attempt.ts';
import { dispatchUpgrade, OpenTunnels } from './transport-websocket.ts';
import { resumingConnector } from './undici-connector.ts';

/** Pool settings shared by every HTTP/1.1 upstream (the connect timeout and TLS come per service). */
export interface PoolSettings {
  /**
   * Keep-alive sockets idle longer than this are closed when the backend does not say how long it
   * keeps them (kept below typical backend timeouts, e.g. Node's 5 s).
   */
  keepAliveTimeoutMs: number;
  /**
   * A backend's own `Keep-Alive: timeout=N` is followed (less undici's 2 s margin) up to this: a
   * capped hint closed sockets the backend still kept, and their next busy moment paid new
   * connections (seen as ~1 connect per 140 requests under steady load with Node backends).
   */
  keepAliveMaxTimeoutMs: number;
  /** Connections per instance. */
  connections: number;
}

/** Defaults: 4 s keep-alive without a hint (Node backends close idle sockets after 5 s), hints followed up to 60 s, 256 connections per instance. */
export const DEFAULT_POOL_SETTINGS: PoolSettings = { keepAliveTimeoutMs: 4_000, keepAliveMaxTimeoutMs: 60_000, connections: 256 };

/** Where an HTTP/1.1 transport connects and how. */
export interface Http1Target {
  readonly host: string;
  /** `host:port`, IPv6 bracketed. */
  readonly address: string;
  readonly connectTimeoutMs: number;
  /** TLS settings; undefined for cleartext. */
  readonly tls: UpstreamTlsOptions | undefined;
}

/**
 * HTTP/1.1 to one instance, in cleartext (`http`) or over TLS (`https`, and the WebSocket handshake
 * of `h2`/`grpcs` instances): one undici `Pool`, so keep-alive sockets are reused across requests.
 */
export class Http1Transport implements Transport {
  private readonly pool: Pool;
  private readonly tunnels = new OpenTunnels();

  constructor(target: Http1Target, settings: PoolSettings = DEFAULT_POOL_SETTINGS) {
    this.pool = new Pool(`${target.tls ? 'https' : 'http'}://${target.address}`, {
      connections: settings.connections,
      pipelining: 1,
      keepAliveTimeout: settings.keepAliveTimeoutMs,
      keepAliveMaxTimeout: settings.keepAliveMaxTimeoutMs,
      // undici's connector with its paused-parser crash repaired (see the module).
      connect: target.tls
        ? withServerName(resumingConnector({ timeout: target.connectTimeoutMs, ...undiciTlsOptions(target.host, target.tls) }), upstreamServerName(target.host, target.tls))
        : resumingConnector({ timeout: target.connectTimeoutMs }),
      // Timeouts are set per request from the route.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  attempt(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null): Promise<AttemptResult> {
    return dispatchAttempt(context, this.pool, pick, timeouts, body);
  }

  attemptThen(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null, receiver: AttemptReceiver): void {
    dispatchAttemptThen(context, this.pool, pick, timeouts, body, receiver);
  }

  upgrade(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts): Promise<AttemptResult> {
    return dispatchUpgrade(context, this.pool, pick, timeouts, this.tunnels);
  }

  hasOpenTunnels(): boolean {
    return this.tunnels.open;
  }

  async close(graceMs?: number): Promise<void> {
    const closing = this.pool.close().catch(() => undefined);
    if (graceMs === undefined) return closing;
    // undici fails the requests still running, and those queued, with UND_ERR_DESTROYED: `pool-closed`, the
    // gateway's own. Its close() is not awaited past that: with requests queued, it resolves only once its
    // queue drains, which a destroy never reports.
    const deadline = performance.now() + graceMs;
    let bound: NodeJS.Timeout | undefined;
    const cut = new Promise<void>((resolve) => {
      bound = setTimeout(() => void this.pool.destroy().then(resolve, resolve), graceMs);
    });
    await Promise.race([closing, cut]);
    clearTimeout(bound);
    // Tunnels left undici with their sockets: a shutdown has cut their clients, and waits for their
    // lines to be logged before the access log closes, within what is left of the same grace (a
    // grace of its own would double the pool's close past the exit margin of shutdown.drainTimeout).
    await this.tunnels.allRecorded(Math.max(0, deadline - performance.now()));
  }
}

/**
 * undici connect options for TLS towards `host`: the service's CA (replacing the system roots),
 * client certificate, verification, and SNI (the configured name, else the host unless it is an IP).
 */
export function undiciTlsOptions(host: string, tls: UpstreamTlsOptions): Record<string, unknown> {
  const serverName = upstreamServerName(host, tls);
  return {
    rejectUnauthorized: tls.verify,
    ...(serverName === undefined ? {} : { servername: serverName }),
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
  };
}

/** The name sent as SNI and checked in the upstream's certificate: the configured one, else the host unless it is an IP (then none). */
function upstreamServerName(host: string, tls: UpstreamTlsOptions): string | undefined {
  return tls.serverName ?? (isIP(host) === 0 ? host : undefined);
}

/**
 * `connect` with the TLS server name fixed to `serverName`. undici takes a request's server name
 * from its Host header, ahead of the connector's own: the client's Host would pick the SNI and
 * the name the certificate is checked against (a configured `serverName` lost to every public
 * Host, and any client could fail the handshake and have it counted against the instance).
 */
function withServerName(connect: buildConnector.connector, serverName: string | undefined): buildConnector.connector {
  return (options, callback) => connect({ ...options, servername: serverName }, callback);
}
