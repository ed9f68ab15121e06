import { describe, expect, it } from 'vitest';
import type { GatewayContext } from '../context.ts';
import { FlowStats } from './flow-stats.ts';
import { InstanceTraffic } from './instance-traffic.ts';
import { RequestMetrics } from './request-metrics.ts';

/** A finished request as the flow statistics read it. */
function finished(status: number, options: { errorClass?: string; consumer?: string; contentLength?: string; bytesOut?: number; upstream?: string; unsent?: boolean; grpcStatus?: number } = {}): GatewayContext {
  return {
    routeName: 'api',
    service: 'user',
    startedAt: performance.now(),
    request: { headers: options.contentLength === undefined ? {} : { 'content-length': options.contentLength } },
    outcome: { status, attempts: 1, bytesOut: options.bytesOut ?? 0, errorClass: options.errorClass, upstream: options.upstream, unsent: options.unsent, grpcStatus: options.grpcStatus },
    upstream: { path: '/test.Echo/Echo' },
    response: { headersSent: true, statusCode: status },
    get: (key: string) => (key === 'consumer' && options.consumer ? { name: options.consumer } : undefined),
  } as unknown as GatewayContext;
}

/** Flow statistics that have recorded `contexts` through `RequestMetrics` and rolled them into their totals. */
function recorded(...contexts: GatewayContext[]): FlowStats {
  const flow = new FlowStats();
  const metrics = new RequestMetrics(flow);
  for (const context of contexts) metrics.request(context);
  flow.roll(100);
  return flow;
}

describe('RequestMetrics with flow statistics', () => {
  it.each([
    ['a 200', finished(200), 0],
    ['a 502 from the gateway', finished(502, { errorClass: 'connect-refused' }), 1],
    ['an upstream 500 passed through', finished(500), 1],
    ['a reset after the headers of a 200', finished(200, { errorClass: 'reset-after-headers' }), 1],
    ['a forward-auth refusal (401)', finished(401, { errorClass: 'forward-auth-denied' }), 0],
    ['a client that went away', finished(499, { errorClass: 'cancelled' }), 0],
    ['a gRPC call its upstream failed with UNAVAILABLE in a 200', finished(200, { grpcStatus: 14 }), 1],
    ['a gRPC call failed with NOT_FOUND', finished(200, { grpcStatus: 5 }), 0],
    ["a gateway's gRPC answer to a request it refused (400, INTERNAL)", finished(400, { errorClass: 'request-rejected', grpcStatus: 13 }), 0],
    ['a rate limit over its limit (429)', finished(429, { errorClass: 'rate-limited' }), 0],
    ["a rate limit whose Redis is away (503): the gateway's own dependency", finished(503, { errorClass: 'rate-limit-unavailable' }), 0],
    ['the same refusal of a gRPC call (UNAVAILABLE in a 200)', finished(200, { errorClass: 'rate-limit-unavailable', grpcStatus: 14 }), 0],
    ['a forward-auth service that did not answer (502)', finished(502, { errorClass: 'auth-unavailable' }), 0],
    ["basicAuth's password checks queued full (503)", finished(503, { errorClass: 'auth-busy' }), 0],
    ['a route whose middleware could not be built (503)', finished(503, { errorClass: 'route-unavailable' }), 0],
    ["a gRPC call its client stopped reading, cut by the instance's send timeout (UNAVAILABLE in a 200)", finished(200, { errorClass: 'client-slow-read', grpcStatus: 14 }), 0],
  ].map(([name, context, errors]) => [name as string, errors as number, context as GatewayContext] as const))('counts %s as %i errors', (_name, errors, context) => {
    const flow = recorded(context);
    expect(flow.of('service', 'user').total).toMatchObject({ requests: 1, errors });
    expect(flow.of('route', 'api').total).toMatchObject({ requests: 1, errors });
  });

  it('counts declared request bytes and sent response bytes per service, route, consumer and the instance that answered', () => {
    const flow = recorded(
      finished(200, { consumer: 'alice', contentLength: '120', bytesOut: 30, upstream: '10.0.0.1:80' }),
      finished(200, { contentLength: 'nonsense', bytesOut: 5, upstream: '10.0.0.1:80' }),
    );
    const both = { requests: 2, errors: 0, bytesIn: 120, bytesOut: 35 };
    expect(flow.of('service', 'user').total).toEqual(both);
    expect(flow.of('route', 'api').total).toEqual(both);
    expect(flow.of('consumer', 'alice').total).toEqual({ requests: 1, errors: 0, bytesIn: 120, bytesOut: 30 });
    // Bytes only: an instance's requests are its attempts, which InstanceTraffic counts.
    expect(flow.instance('user', '10.0.0.1:80').total).toEqual({ requests: 0, errors: 0, bytesIn: 120, bytesOut: 35 });
  });

  it('gives no instance the bytes of a request whose last attempt its transport dropped unsent, and still counts the request and its error for the route and the service', () => {
    const flow = recorded(
      finished(504, { errorClass: 'deadline-exceeded', contentLength: '7', bytesOut: 40, upstream: '10.0.0.1:80', unsent: true }),
      finished(200, { contentLength: '3', bytesOut: 5, upstream: '10.0.0.1:80' }),
    );
    const both = { requests: 2, errors: 1, bytesIn: 10, bytesOut: 45 };
    expect(flow.of('service', 'user').total).toEqual(both);
    expect(flow.of('route', 'api').total).toEqual(both);
    expect(flow.instance('user', '10.0.0.1:80').total).toEqual({ requests: 0, errors: 0, bytesIn: 3, bytesOut: 5 });
  });

  it('counts every attempt on an instance, failed ones as errors, and nothing for a request that matched no route', () => {
    const flow = new FlowStats();
    const traffic = new InstanceTraffic(undefined, flow);
    traffic.attempt('user', '10.0.0.1:80', 'connect-refused');
    traffic.attempt('user', '10.0.0.2:80', undefined);
    traffic.attempt('user', '10.0.0.2:80', 'cancelled');
    new RequestMetrics(flow).request({ ...finished(404, { errorClass: 'no-route' }), routeName: '', service: '' } as GatewayContext);
    flow.roll(100);
    expect(flow.instance('user', '10.0.0.1:80').total).toMatchObject({ requests: 1, errors: 1 });
    expect(flow.instance('user', '10.0.0.2:80').total).toMatchObject({ requests: 2, errors: 0 });
    expect(flow.list('service')).toEqual([]);
    expect(flow.list('route')).toEqual([]);
  });
});
