import { constants } from 'node:http2';
import { http2ProbeSession } from './http2-probe-session.ts';
import type { HealthProbe } from './probe.ts';
import type { ProbeTlsOptions } from './probe-tls.ts';

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
    http2ProbeSession(target, signal, { tls: TLS_PROTOCOLS.has(target.protocol), tlsOptions: options.tls }, (session, settle) => {
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
      stream.end();
      return stream;
    });
}
