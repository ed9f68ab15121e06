import type { Readable } from 'node:stream';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, AttemptTimeouts, Transport } from './transport.ts';
import { Http1Transport } from './transport-http1.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { DEFAULT_HTTP2_SESSION_LIMITS, Http2SessionPool, type Http2SessionLimits, type Http2Target } from './transport-http2-sessions.ts';

export type { Http2Target } from './transport-http2-sessions.ts';

/**
 * HTTP/2 to one instance with node:http2 (chosen over undici's H2CClient: about twice the
 * throughput here and response trailers delivered, which gRPC needs; see bench/proxy/h2-clients.mjs).
 * Requests share a small pool of sessions (`Http2SessionPool`): one while its peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS leaves room, another when it is full, and past
 * `concurrency.maxConnections` sessions a short FIFO wait for a stream; a session that receives
 * GOAWAY takes no new stream (the next request goes on another) and counts towards the cap until it
 * has closed. The WebSocket handshake goes over HTTP/1.1 to the same address (RFC 8441 WebSocket
 * over HTTP/2 is not spoken), in cleartext or TLS as the protocol says.
 */
export class Http2Transport implements Transport {
  private readonly sessions: Http2SessionPool;
  private upgrader: Http1Transport | undefined;

  constructor(
    private readonly target: Http2Target,
    limits: Http2SessionLimits = DEFAULT_HTTP2_SESSION_LIMITS,
  ) {
    this.sessions = new Http2SessionPool(target, limits);
  }

  /** Sessions open or connecting to the instance. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  attempt(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null): Promise<AttemptResult> {
    return http2Attempt(context, this.sessions.reserve, pick, timeouts, body, this.target.tls ? 'https' : 'http', this.sessions);
  }

  upgrade(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts): Promise<AttemptResult> {
    this.upgrader ??= new Http1Transport(this.target);
    return this.upgrader.upgrade(context, pick, timeouts);
  }

  hasOpenTunnels(): boolean {
    return this.upgrader?.hasOpenTunnels() ?? false;
  }

  async close(graceMs?: number): Promise<void> {
    await Promise.all([this.upgrader?.close(graceMs), this.sessions.close(graceMs)]);
  }
}
