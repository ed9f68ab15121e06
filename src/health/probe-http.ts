import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { InstanceProtocol } from '../discovery/instance.ts';
import type { Logger } from '../logger.ts';
import { hintServerNameOnMismatch } from '../upstream-tls-hint.ts';
import { grpcProbe } from './probe-grpc.ts';
import { http2Probe } from './probe-http2.ts';
import { probeFailureDetail, type HealthProbe } from './probe.ts';
import { probeTlsConnectOptions, type ProbeTlsOptions } from './probe-tls.ts';

export type { ProbeTlsOptions } from './probe-tls.ts';

/** An inclusive range of HTTP statuses, e.g. `{ from: 200, to: 299 }`. */
export interface StatusRange {
  readonly from: number;
  readonly to: number;
}

/** Options of the HTTP health probe. */
export interface HttpProbeOptions {
  /** Request path with optional query; `/health` by default. */
  readonly path?: string;
  /** Statuses that pass; 200–299 by default (Envoy passes only 200, HAProxy 2xx and 3xx). */
  readonly expectedStatuses?: readonly (number | StatusRange)[];
  /** Host header (`:authority` over HTTP/2); the target's `host:port` by default. */
  readonly hostHeader?: string;
  /** TLS settings for `https`, `h2` and `grpcs` targets, the same the traffic to them uses. */
  readonly tls?: ProbeTlsOptions;
  /** The service name a `grpc`/`grpcs` instance's health check asks about; '' (the whole server) by default. */
  readonly grpcService?: string;
  /**
   * Where the gateway's hint goes when a TLS target registered by IP fails because its certificate
   * lacks the IP (`hintServerNameOnMismatch`); no hint without it, as for the registry agent, whose
   * backend is not fixed by a gateway setting.
   */
  readonly tlsHintLog?: Logger;
}

const TLS_PROTOCOLS: ReadonlySet<InstanceProtocol> = new Set(['https', 'h2', 'grpcs']);
const GRPC_PROTOCOLS: ReadonlySet<InstanceProtocol> = new Set(['grpc', 'grpcs']);
const HTTP2_PROTOCOLS: ReadonlySet<InstanceProtocol> = new Set(['h2c', 'h2', 'grpc', 'grpcs']);

/**
 * A probe that sends `GET path` on a fresh connection (no pooling, so a check always proves the
 * listener accepts) and passes when the status is expected, speaking the target's protocol as the
 * proxy does: HTTP/1.1 for `http`, HTTP/1.1 over TLS for `https`, HTTP/2 with prior knowledge for
 * `h2c` and `grpc` (an h2c-only backend does not answer HTTP/1.1), HTTP/2 over TLS (ALPN h2) for
 * `h2`. A `grpc` or `grpcs` instance gets the standard gRPC health check instead (`grpcProbe`:
 * `grpc.health.v1.Health/Check` for `grpcService`, SERVING passes). TLS verifies the certificate with `tls` (system roots by default). The body is
 * not read: the connection is closed once the status is in. A TLS target registered by IP that
 * fails because its certificate lacks the IP gets the data plane's hint to set `tls.serverName`
 * (`hintServerNameOnMismatch`, once per service) on `tlsHintLog`: otherwise it is only marked down.
 */
export function httpProbe(options: HttpProbeOptions = {}): HealthProbe {
  const path = options.path ?? '/health';
  const expected = options.expectedStatuses ?? [{ from: 200, to: 299 }];
  const passes = (status: number) => expected.some((entry) => (typeof entry === 'number' ? status === entry : status >= entry.from && status <= entry.to));
  const probe2 = http2Probe({ path, passes, hostHeader: options.hostHeader, tls: options.tls });
  const probeGrpc = grpcProbe({ service: options.grpcService ?? '', tls: options.tls, ...(options.hostHeader ? { authority: options.hostHeader } : {}) });
  const hintLog = options.tlsHintLog;
  const check: HealthProbe = (target, signal) => {
    if (GRPC_PROTOCOLS.has(target.protocol)) return probeGrpc(target, signal);
    if (HTTP2_PROTOCOLS.has(target.protocol)) return probe2(target, signal);
    return new Promise((resolve) => {
      const tls = TLS_PROTOCOLS.has(target.protocol);
      const send = tls ? httpsRequest : httpRequest;
      const onResponse = (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        // The status is the verdict; the body is not read. The connection goes at once: one whose
        // body never ends (a hung or streaming endpoint) would otherwise stay open for good, one
        // more at every check, since the checker's deadline ends with the verdict.
        response.on('error', () => undefined);
        response.destroy();
        resolve({ healthy: passes(status), detail: `status ${status}` });
      };
      const request = send(
        {
          host: target.host,
          port: target.port,
          path,
          method: 'GET',
          agent: false,
          signal,
          headers: { host: options.hostHeader ?? target.address, 'user-agent': 'switchboard-health-check', connection: 'close' },
          ...(tls ? probeTlsConnectOptions(target.host, options.tls) : {}),
        },
        onResponse,
      );
      request.once('error', (error) => resolve({ healthy: false, detail: probeFailureDetail(error, signal) }));
      request.end();
    });
  };
  if (!hintLog) return check;
  return async (target, signal) => {
    const result = await check(target, signal);
    // A failed connection's detail is its Node or OpenSSL error code (`probeFailureDetail`).
    if (!result.healthy && target.service !== undefined && TLS_PROTOCOLS.has(target.protocol)) hintServerNameOnMismatch(hintLog, target.service, target.host, options.tls?.serverName, result.detail);
    return result;
  };
}
