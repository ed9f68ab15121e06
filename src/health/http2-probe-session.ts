import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { probeFailureDetail, type ProbeResult, type ProbeTarget } from './probe.ts';
import { probeTlsConnectOptions, type ProbeTlsOptions } from './probe-tls.ts';
import { UPSTREAM_HEADER_PAIRS } from '../http2-limits.ts';

/** Gives a probe's verdict once; later calls are ignored. */
export type ProbeSettle = (healthy: boolean, detail: string) => void;

/** How an HTTP/2 probe reaches its target. */
export interface Http2ProbeSessionOptions {
  /** TLS with ALPN `h2` when true, prior knowledge (h2c) otherwise. */
  readonly tls: boolean;
  readonly tlsOptions: ProbeTlsOptions | undefined;
}

/**
 * Runs one exchange on a fresh HTTP/2 session to `target` and resolves with the first verdict:
 * the exchange's own `settle`, an abort of `signal`, a session error, or the stream's error or
 * close before an answer. The session is destroyed as soon as the verdict is given, so an abort
 * ends the check at once. Resolves, never rejects.
 */
export function http2ProbeSession(
  target: ProbeTarget,
  signal: AbortSignal,
  options: Http2ProbeSessionOptions,
  exchange: (session: ClientHttp2Session, settle: ProbeSettle) => ClientHttp2Stream,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle: ProbeSettle = (healthy, detail) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      // The verdict is given; a late error of a closing session must not become an uncaught 'error'.
      session.on('error', () => undefined);
      session.destroy();
      resolve({ healthy, detail });
    };
    const onAbort = () => settle(false, probeFailureDetail(signal.reason, signal));
    const authority = `${options.tls ? 'https' : 'http'}://${target.address}`;
    const session: ClientHttp2Session = connect(
      authority,
      // As many answer fields as proxied traffic accepts: a check must not fail an instance its requests pass on.
      { ...(options.tls ? { ...probeTlsConnectOptions(target.host, options.tlsOptions), ALPNProtocols: ['h2'] } : {}), maxHeaderListPairs: UPSTREAM_HEADER_PAIRS },
    );
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    session.once('error', (error) => settle(false, probeFailureDetail(error, signal)));
    const stream = exchange(session, settle);
    // Stream events come later than this call, so these listeners still see every one of them.
    // A session that fails to connect (refused, TLS handshake) first cancels its pending stream,
    // whose error carries the session's as its cause: that is the reason to report.
    stream.once('error', (error) => settle(false, probeFailureDetail(streamFailure(error), signal)));
    stream.once('close', () => settle(false, 'stream closed before an answer'));
  });
}

/** The session's error behind a stream that its failing session cancelled, else `error` itself. */
function streamFailure(error: unknown): unknown {
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  return code === 'ERR_HTTP2_STREAM_CANCEL' && cause !== undefined ? cause : error;
}
