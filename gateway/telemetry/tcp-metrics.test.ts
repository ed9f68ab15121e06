import { describe, expect, it } from 'vitest';
import { forgetServiceSeries } from './service-series.ts';
import { tcpBytesTotal, tcpConnectionsOpen, tcpConnectionsTotal, tcpErrorsTotal, tcpServiceCells } from './tcp-metrics.ts';

/** The value of the series of `metric` whose labels include `labels`, undefined when it has none. */
async function value(metric: { get(): Promise<{ values: readonly { labels: Record<string, string | number>; value: number }[] }> }, labels: Record<string, string>): Promise<number | undefined> {
  const { values } = await metric.get();
  return values.find((sample) => Object.entries(labels).every(([name, wanted]) => sample.labels[name] === wanted))?.value;
}

describe('tcpServiceCells after the service is forgotten', () => {
  it('counts the connections of a service of that name in new series, and one still open leaves the new gauge alone', async () => {
    const service = 'tcp-forget-canary';
    const before = tcpServiceCells(service);
    before.connections.value += 1;
    before.opened();
    before.error('connect-refused');

    await forgetServiceSeries(service);
    expect(await value(tcpConnectionsTotal, { service })).toBeUndefined();

    const after = tcpServiceCells(service);
    after.connections.value += 1;
    after.bytesIn.value += 5;
    after.opened();
    after.error('connect-refused');
    before.closed();

    expect(await value(tcpConnectionsTotal, { service })).toBe(1);
    expect(await value(tcpBytesTotal, { service, direction: 'in' })).toBe(5);
    expect(await value(tcpErrorsTotal, { service, class: 'connect-refused' })).toBe(1);
    expect(await value(tcpConnectionsOpen, { service })).toBe(1);
  });
});
