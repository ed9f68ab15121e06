import { describe, expect, it } from 'vitest';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { instancesGauge, recordInstances } from './gateway-metrics.ts';

const endpoint = (port: number, active: 'unknown' | 'healthy' | 'unhealthy', ejected: boolean, inRegistry = true) => ({
  address: `10.0.0.1:${port}`,
  instance: { id: String(port), service: 'gm', host: '10.0.0.1', port, weight: 1, protocol: 'http' as const, metadata: {} },
  inRegistry,
  active,
  ejected,
  routable: true,
});

describe('recordInstances', () => {
  it('sets the total and the healthy count of a service, instances in their grace period included', async () => {
    const snapshot: HealthSnapshot = {
      service: 'gm',
      panic: false,
      endpoints: [endpoint(1, 'unknown', false), endpoint(2, 'unhealthy', false), endpoint(3, 'healthy', true), endpoint(4, 'healthy', false, false)],
    };
    recordInstances(snapshot);
    const { values } = await instancesGauge.get();
    const of = (state: string) => values.find((sample) => sample.labels.service === 'gm' && sample.labels.state === state)?.value;
    expect([of('total'), of('healthy')]).toEqual([4, 2]);
  });
});
