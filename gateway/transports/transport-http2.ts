import { connect, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, AttemptTimeouts, Transport, UpstreamTlsOptions } from './transport.ts';
import { Http1Transport, undiciTlsOptions } from './transport-http1.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { UpstreamTimeoutError } from './transport-outcome.ts';

/** Where an HTTP/2 transport connects and how. */
export interface Http2Target {
  readonly host: string;
  /** `host:port`, IPv6 bracketed. */
  readonly address: string;
  readonly connectTimeoutMs: number;
  /** TLS settings (`h2`, `grpcs`: ALPN h2); undefined for prior-knowledge cleartext (`h2c`, `grpc`). */
  readonly tls: UpstreamTlsOptions | undefined;
}

/**
 * HTTP/2 to one instance with node:http2 (chosen over undici's H2CClient: about twice the
 * throughput here and response trailers delivered, which gRPC needs; see bench/proxy/h2-clients.mjs).
 * One session multiplexes every request; a session that closes or receives GOAWAY is replaced on
 * the next request. The WebSocket handshake goes over HTTP/1.1 to the same address (RFC 8441
 * WebSocket over HTTP/2 is not spoken), in cleartext or TLS as the protocol says.
 */
export class Http2Transport implements Transport {
  private current: { session: ClientHttp2Session; ready: Promise<ClientHttp2Session> } | undefined;
  private upgrader: Http1Transport | undefined;
  private closed = false;

  constructor(private readonly target: Http2Target) {}

  attempt(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: GatewayContext['request'] | null): Promise<AttemptResult> {
    return http2Attempt(context, () => this.session(), pick, timeouts, body, this.target.tls ? 'https' : 'http');
  }

  upgrade(context: GatewayContext, pick: PickedEndpoint, timeouts: AttemptTimeouts): Promise<AttemptResult> {
    this.upgrader ??= new Http1Transport(this.target);
    return this.upgrader.upgrade(context, pick, timeouts);
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.current?.session;
    this.current = undefined;
    await Promise.all([
      this.upgrader?.close(),
      session && !session.destroyed && new Promise<void>((resolve) => session.close(() => resolve())),
    ]);
  }

  /** The live session, connecting one when there is none; rejects with the connect error (refused, TLS, timeout). */
  private session(): Promise<ClientHttp2Session> {
    const entry = this.current;
    if (entry && !entry.session.closed && !entry.session.destroyed) return entry.ready;
    if (this.closed) return Promise.reject(Object.assign(new Error('the transport is closed'), { code: 'UND_ERR_CLOSED' }));
    const { address, host, tls, connectTimeoutMs } = this.target;
    const options: SecureClientSessionOptions = tls ? { ...(undiciTlsOptions(host, tls) as SecureClientSessionOptions), ALPNProtocols: ['h2'] } : {};
    const session = connect(`${tls ? 'https' : 'http'}://${address}`, options);
    const ready = new Promise<ClientHttp2Session>((resolve, reject) => {
      const timer =
        connectTimeoutMs > 0
          ? setTimeout(() => session.destroy(new UpstreamTimeoutError('SB_UPSTREAM_CONNECT_TIMEOUT', `no HTTP/2 session with ${address} within ${connectTimeoutMs} ms`)), connectTimeoutMs)
          : undefined;
      session.once('connect', () => {
        clearTimeout(timer);
        resolve(session);
      });
      session.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      session.once('close', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error(`the HTTP/2 session with ${address} closed before it was ready`), { code: 'ERR_HTTP2_INVALID_SESSION' }));
      });
    });
    // Failures reach the attempts through `ready`; the session's own 'error' must not go uncaught.
    ready.catch(() => undefined);
    session.on('error', () => undefined);
    const forget = () => {
      if (this.current?.session === session) this.current = undefined;
    };
    session.once('close', forget);
    // After GOAWAY the session takes no new streams: the next request opens a new one.
    session.once('goaway', forget);
    // An idle upstream session must not keep the process alive (the listener does while it runs).
    session.unref();
    this.current = { session, ready };
    return ready;
  }
}
