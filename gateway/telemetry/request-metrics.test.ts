import { describe, expect, it } from 'vitest';
import type { GatewayContext } from '../context.ts';
import { InstanceTraffic } from './instance-traffic.ts';
import { RequestMetrics, requestDurationSeconds, requestsTotal, statusClassIndex, STATUS_CLASSES, upstreamErrorsTotal } from './request-metrics.ts';

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
    metrics.request(finished('rm-users', 'user', 200, 3));
    metrics.request(finished('rm-users', 'user', 204, 30));
    metrics.request(finished('rm-users', 'user', 502, 3));
    expect(await value(requestsTotal, { route: 'rm-users', service: 'user', status: '2xx' })).toBe(2);
    expect(await value(requestsTotal, { route: 'rm-users', service: 'user', status: '5xx' })).toBe(1);
    expect(await value(requestDurationSeconds, { route: 'rm-users', service: 'user' }, 'switchboard_request_duration_seconds_count')).toBe(3);
    expect(await value(requestDurationSeconds, { route: 'rm-users', service: 'user', le: '0.01' }, 'switchboard_request_duration_seconds_bucket')).toBe(2);
  });

  it('uses the status already sent when no outcome was recorded, and empty labels for a request no route matched', async () => {
    const metrics = new RequestMetrics();
    const context = finished('', '', 0);
    Object.assign(context.response, { headersSent: true, statusCode: 304 });
    metrics.request(context);
    expect(await value(requestsTotal, { route: '', service: '', status: '3xx' })).toBe(1);
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
