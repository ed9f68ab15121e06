import { connect, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import type { Socket } from 'node:net';
import type { UpstreamTlsOptions } from './transport.ts';
import { undiciTlsOptions } from './transport-http1.ts';
import { UpstreamTimeoutError } from './transport-outcome.ts';
import { UPSTREAM_HEADER_PAIRS } from '../../src/http2-limits.ts';

/** Where an HTTP/2 transport connects and how. */
export interface Http2Target {
  readonly host: string;
  /** `host:port`, IPv6 bracketed. */
  readonly address: string;
  readonly connectTimeoutMs: number;
  /** TLS settings (`h2`, `grpcs`: ALPN h2); undefined for prior-knowledge cleartext (`h2c`, `grpc`). */
  readonly tls: UpstreamTlsOptions | undefined;
}

/** One session of the pool and the streams handed out on it. */
export interface PooledSession {
  readonly session: ClientHttp2Session;
  readonly ready: Promise<ClientHttp2Session>;
  /** Rejects `ready` with `error` and destroys the session, while it is still connecting. */
  readonly abandon: (error: Error) => void;
  /**
   * The session's own socket, set once `ready` has resolved: destroying the session leaves it
   * waiting for its writes to drain, for good when the upstream has stopped reading.
   */
  socket: Socket | undefined;
  /** Streams reserved on the session: handed out to an attempt and not yet given back. */
  active: number;
  /** Of the streams reserved while the session connected, those kept on it once its peer's first SETTINGS came (`Http2SessionPool`). */
  admitted: number;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS; until they arrive, what the peer said last on another session. */
  limit: number;
  /** When `active` last fell to 0. */
  idleSince: number;
}

/**
 * How long a session whose service has no connect timeout (0) waits, once connected, for its peer's
 * first SETTINGS (RFC 9113 §3.4: the first frame a server sends; one round trip for a live one).
 */
export const SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens a session to `target` for `Http2SessionPool`, assuming `limit` streams until its peer's
 * SETTINGS say: `ready` resolves once it is connected and those first SETTINGS have come, or
 * rejects with the connect error (refused, TLS, the connect timeout, which bounds the wait for the
 * SETTINGS too, or without one `SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS` from the connect), a close
 * before that, or what `abandon` is given. The pool counts its streams and follows its SETTINGS and
 * its close.
 *
 * Not at 'connect': node:http2 then sends streams at once, up to the 100 it assumes, and an
 * instance whose SETTINGS_MAX_CONCURRENT_STREAMS is lower refuses the rest with REFUSED_STREAM (RFC
 * 9113 §5.1.2) on a session that stays, which failed them as `connect-refused` against a healthy
 * instance. Waiting costs the session's first streams one round trip; grpc-go waits so too.
 */
export function openPooledSession(target: Http2Target, limit: number): PooledSession {
  const { address, host, tls, connectTimeoutMs } = target;
  const options: SecureClientSessionOptions = { ...(tls ? { ...(undiciTlsOptions(host, tls) as SecureClientSessionOptions), ALPNProtocols: ['h2'] } : {}), maxHeaderListPairs: UPSTREAM_HEADER_PAIRS };
  const session = connect(`${tls ? 'https' : 'http'}://${address}`, options);
  let abandon!: (error: Error) => void;
  const ready = new Promise<ClientHttp2Session>((resolve, reject) => {
    abandon = (error: Error) => {
      clearTimeout(timer);
      reject(error);
      session.destroy();
    };
    let timer = connectTimeoutMs > 0 ? setTimeout(() => abandon(new UpstreamTimeoutError('SB_UPSTREAM_CONNECT_TIMEOUT', `no HTTP/2 session with ${address} within ${connectTimeoutMs} ms`)), connectTimeoutMs) : undefined;
    let connected: Socket | undefined;
    let settingsCame = false;
    const readyOnceBoth = () => {
      if (connected === undefined || !settingsCame) return;
      clearTimeout(timer);
      entry.socket = connected;
      resolve(session);
    };
    session.once('connect', (_session: ClientHttp2Session, socket: Socket) => {
      connected = socket;
      // Without a connect timeout nothing else bounds an instance that took the connection and never
      // speaks (a hung process whose kernel still accepts): its requests would wait for good, where
      // sent at 'connect' their headers timeout ended them.
      if (timer === undefined && !settingsCame) timer = setTimeout(() => abandon(new UpstreamTimeoutError('SB_UPSTREAM_CONNECT_TIMEOUT', `no HTTP/2 SETTINGS from ${address} within ${SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS} ms of connecting`)), SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS);
      readyOnceBoth();
    });
    session.once('remoteSettings', () => {
      settingsCame = true;
      readyOnceBoth();
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
  const entry: PooledSession = { session, ready, abandon, socket: undefined, active: 0, admitted: 0, limit, idleSince: 0 };
  return entry;
}
