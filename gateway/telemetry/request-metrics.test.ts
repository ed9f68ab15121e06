import { describe, expect, it } from 'vitest';
import type { GatewayContext } from '../context.ts';
import { InstanceTraffic } from './instance-traffic.ts';
import { grpcCallsTotal, RequestMetrics, requestDurationSeconds, requestsTotal, statusClassIndex, STATUS_CLASSES, upstreamErrorsTotal } from './request-metrics.ts';

/** The fields of a finished request that the metrics read. */
function finished(routeName: string, service: string, status: number, ageMs = 0): GatewayContext {
  return {
    routeName,
    service,
    startedAt: performance.now() - ageMs,
    outcome: { status, attempts: 1, bytesOut: 0 },
    response: { headersSent: false, statusCode: 200 },
  } as unknown as GatewayContext;
}

/** A finished gRPC call to `path` with `grpcStatus`; `errorClass` set when the gateway answered it. */
function grpcCall(service: string, path: string, grpcStatus: number, errorClass?: string): GatewayContext {
  const context = finished(service === '' ? '' : 'rm-grpc', service, 200);
  Object.assign(context, { upstream: { path }, get: () => undefined });
  Object.assign(context.outcome, { grpcStatus, ...(errorClass === undefined ? {} : { errorClass }) });
  return context;
}

async function value(metric: { get(): Promise<{ values: { labels: Record<string, string | number>; value: number; metricName?: string }[] }> }, labels: Record<string, string>, metricName?: string) {
  const { values } = await metric.get();
  const match = values.find((sample) => (metricName === undefined || sample.metricName === metricName) && Object.entries(labels).every(([key, text]) => String(sample.labels[key]) === text));
  return match?.value;
}

describe('statusClassIndex', () => {
  it.each([
    [101, '1xx'],
    [200, '2xx'],
    [304, '3xx'],
    [404, '4xx'],
    [499, '4xx'],
    [503, '5xx'],
    [0, 'unknown'],
    [600, 'unknown'],
  ])('puts %i in class %s', (status, label) => {
    expect(STATUS_CLASSES[statusClassIndex(status)]).toBe(label);
  });
});

describe('RequestMetrics', () => {
  it('counts requests by route, service and status class, and observes their duration', async () => {
    const metrics = new RequestMetrics();
    // Ages far from the 0.5 s bound, so a loaded machine's pause between building and observing cannot move one across it.
    metrics.request(finished('rm-users', 'user', 200, 3));
    metrics.request(finished('rm-users', 'user', 204, 2_000));
    metrics.request(finished('rm-users', 'user', 502, 3));
    expect(await value(requestsTotal, { route: 'rm-users', service: 'user', status: '2xx' })).toBe(2);
    expect(await value(requestsTotal, { route: 'rm-users', service: 'user', status: '5xx' })).toBe(1);
    expect(await value(requestDurationSeconds, { route: 'rm-users', service: 'user' }, 'switchboard_request_duration_seconds_count')).toBe(3);
    expect(await value(requestDurationSeconds, { route: 'rm-users', service: 'user', le: '0.5' }, 'switchboard_request_duration_seconds_bucket')).toBe(2);
  });

  it('uses the status already sent when no outcome was recorded, and empty labels for a request no route matched', async () => {
    const metrics = new RequestMetrics();
    const context = finished('', '', 0);
    Object.assign(context.response, { headersSent: true, statusCode: 304 });
    metrics.request(context);
    expect(await value(requestsTotal, { route: '', service: '', status: '3xx' })).toBe(1);
  });

  it("counts a listener's own answers to malformed requests as requests no route matched, without a duration it never measured", async () => {
    const metrics = new RequestMetrics();
    const unmatched = { route: '', service: '' };
    const before = (await value(requestsTotal, { ...unmatched, status: '4xx' })) ?? 0;
    const timedBefore = (await value(requestDurationSeconds, unmatched, 'switchboard_request_duration_seconds_count')) ?? 0;
    for (const status of [400, 408, 431]) metrics.refused(status);
    expect(await value(requestsTotal, { ...unmatched, status: '4xx' })).toBe(before + 3);
    expect((await value(requestDurationSeconds, unmatched, 'switchboard_request_duration_seconds_count')) ?? 0).toBe(timedBefore);
  });

  it('gives gRPC methods labels of their own only once an upstream answered them: made-up methods cannot push the real ones into other', async () => {
    const metrics = new RequestMetrics();
    // More made-up calls than the series budget: no route, refused by the gateway, unknown to the server.
    for (let index = 0; index < 700; index += 1) metrics.request(grpcCall('', `/made.Up${index}/Call`, 12, 'no-route'));
    for (let index = 0; index < 700; index += 1) metrics.request(grpcCall('rm-echo', `/test.Echo/Made${index}`, 16, 'missing-token'));
    for (let index = 0; index < 700; index += 1) metrics.request(grpcCall('rm-echo', `/test.Echo/Unknown${index}`, 12));
    metrics.request(grpcCall('rm-echo', '/test.Echo/Echo', 16, 'missing-token'));
    metrics.request(grpcCall('rm-echo', '/test.Echo/Echo', 0));
    metrics.request(grpcCall('rm-echo', '/test.Echo/Echo', 16, 'missing-token'));
    metrics.request(grpcCall('rm-echo', '/test.Echo/Echo', 14));
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'test.Echo', grpc_method: 'Echo', grpc_code: '0' })).toBe(1);
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'test.Echo', grpc_method: 'Echo', grpc_code: '14' })).toBe(1);
    // The refusal before the method was known counts as other, the one after under its name.
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'test.Echo', grpc_method: 'Echo', grpc_code: '16' })).toBe(1);
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'other', grpc_method: 'other', grpc_code: '16' })).toBe(701);
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'other', grpc_method: 'other', grpc_code: '12' })).toBe(700);
    expect(await value(grpcCallsTotal, { service: 'rm-echo', grpc_service: 'test.Echo', grpc_method: 'Unknown1' })).toBeUndefined();
  });

  it('counts upstream failures by service and class through the traffic counters, never a client cancel', async () => {
    const traffic = new InstanceTraffic(new RequestMetrics());
    traffic.attempt('rm-orders', '10.0.0.1:80', undefined);
    traffic.attempt('rm-orders', '10.0.0.1:80', 'connect-refused');
    traffic.attempt('rm-orders', '10.0.0.1:80', 'http-5xx');
    traffic.attempt('rm-orders', '10.0.0.1:80', 'cancelled');
    traffic.unavailable('rm-orders', 'no-healthy-instances');
    expect(traffic.counts('rm-orders', '10.0.0.1:80')).toEqual({ requests: 4, errors: 2 });
    expect(await value(upstreamErrorsTotal, { service: 'rm-orders', class: 'connect-refused' })).toBe(1);
    expect(await value(upstreamErrorsTotal, { service: 'rm-orders', class: 'http-5xx' })).toBe(1);
    expect(await value(upstreamErrorsTotal, { service: 'rm-orders', class: 'no-healthy-instances' })).toBe(1);
    expect(await value(upstreamErrorsTotal, { service: 'rm-orders', class: 'cancelled' })).toBeUndefined();
  });
});

describe('RequestMetrics.forget', () => {
  it('counts a forgotten service that comes back in new series, not in the cells its series were removed with', async () => {
    const metrics = new RequestMetrics();
    metrics.request(finished('rm-forget', 'rm-canary', 200));
    metrics.upstreamError('rm-canary', 'refused');
    expect(await value(requestsTotal, { route: 'rm-forget', service: 'rm-canary', status: '2xx' })).toBe(1);
    requestsTotal.removeMatching('service', 'rm-canary');
    upstreamErrorsTotal.removeMatching('service', 'rm-canary');
    requestDurationSeconds.removeMatching('service', 'rm-canary');
    metrics.forget('rm-canary');
    metrics.request(finished('rm-forget', 'rm-canary', 200));
    metrics.upstreamError('rm-canary', 'refused');
    expect(await value(requestsTotal, { route: 'rm-forget', service: 'rm-canary', status: '2xx' })).toBe(1);
    expect(await value(upstreamErrorsTotal, { service: 'rm-canary', class: 'refused' })).toBe(1);
    expect(await value(requestDurationSeconds, { route: 'rm-forget', service: 'rm-canary' }, 'switchboard_request_duration_seconds_count')).toBe(1);
  });
});
