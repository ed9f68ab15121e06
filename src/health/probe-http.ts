import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { probeFailureDetail, type HealthProbe, type ProbeTarget } from './probe.ts';

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
  /** Host header; the target's `host:port` by default. */
  readonly hostHeader?: string;
  /** TLS: verify the upstream certificate (true by default). */
  readonly rejectUnauthorized?: boolean;
}

const TLS_PROTOCOLS = new Set<ProbeTarget['protocol']>(['https', 'h2', 'grpcs']);

/**
 * A probe that sends `GET path` over HTTP/1.1 on a fresh connection (no pooling, so a check
 * always proves the listener accepts) and passes when the status is expected. HTTPS is used for
 * `https`, `h2` and `grpcs` instances. The body is drained and ignored.
 */
export function httpProbe(options: HttpProbeOptions = {}): HealthProbe {
  const path = options.path ?? '/health';
  const expected = options.expectedStatuses ?? [{ from: 200, to: 299 }];
  const passes = (status: number) => expected.some((entry) => (typeof entry === 'number' ? status === entry : status >= entry.from && status <= entry.to));
  return (target, signal) =>
    new Promise((resolve) => {
      const tls = TLS_PROTOCOLS.has(target.protocol);
      const send = tls ? httpsRequest : httpRequest;
      const onResponse = (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        // The verdict is already given; a reset while draining must not become an uncaught 'error'.
        response.on('error', () => undefined);
        response.resume();
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
          ...(tls ? { rejectUnauthorized: options.rejectUnauthorized ?? true } : {}),
        },
        onResponse,
      );
      request.once('error', (error) => resolve({ healthy: false, detail: probeFailureDetail(error, signal) }));
      request.end();
    });
}
