import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { probeFailureDetail, type HealthProbe } from './probe.ts';
import { probeTlsConnectOptions, type ProbeTlsOptions } from './probe-tls.ts';

/** What the HTTP/2 probe needs from `httpProbe`'s options, already resolved. */
export interface Http2ProbeOptions {
  readonly path: string;
  readonly passes: (status: number) => boolean;
  readonly hostHeader: string | undefined;
  readonly tls: ProbeTlsOptions | undefined;
}

const TLS_PROTOCOLS = new Set(['h2', 'grpcs']);

/**
 * `GET path` over HTTP/2 on a fresh session (closed after the answer): prior knowledge for `h2c`
 * and `grpc`, TLS with ALPN `h2` for `h2` and `grpcs`. Resolves, never rejects; an abort destroys
 * the session at once.
 */
export function http2Probe(options: Http2ProbeOptions): HealthProbe {
  return (target, signal) =>
    new Promise((resolve) => {
      const tls = TLS_PROTOCOLS.has(target.protocol);
      let settled = false;
      const settle = (healthy: boolean, detail: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        // The verdict is given; a late error of a closing session must not become an uncaught 'error'.
        session.on('error', () => undefined);
        session.destroy();
        resolve({ healthy, detail });
      };
      const onAbort = () => settle(false, probeFailureDetail(signal.reason, signal));
      const authority = `${tls ? 'https' : 'http'}://${target.address}`;
      const session: ClientHttp2Session = connect(authority, tls ? { ...probeTlsConnectOptions(target.host, options.tls), ALPNProtocols: ['h2'] } : {});
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      session.once('error', (error) => settle(false, probeFailureDetail(error, signal)));
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'GET',
        [constants.HTTP2_HEADER_PATH]: options.path,
        [constants.HTTP2_HEADER_AUTHORITY]: options.hostHeader ?? target.address,
        'user-agent': 'switchboard-health-check',
      });
      stream.once('response', (headers) => {
        const status = Number(headers[constants.HTTP2_HEADER_STATUS] ?? 0);
        settle(options.passes(status), `status ${status}`);
      });
      stream.once('error', (error) => settle(false, probeFailureDetail(error, signal)));
      stream.once('close', () => settle(false, 'stream closed before an answer'));
      stream.end();
    });
}
