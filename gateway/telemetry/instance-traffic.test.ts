import { describe, expect, it } from 'vitest';
import { InstanceTraffic } from './instance-traffic.ts';

describe('InstanceTraffic', () => {
  it('keeps counts per service and address, zeros for an address never tried', () => {
    const traffic = new InstanceTraffic();
    traffic.attempt('a', '10.0.0.1:80', undefined);
    traffic.attempt('b', '10.0.0.1:80', 'http-5xx');
    expect(traffic.counts('a', '10.0.0.1:80')).toEqual({ requests: 1, errors: 0 });
    expect(traffic.counts('b', '10.0.0.1:80')).toEqual({ requests: 1, errors: 1 });
    expect(traffic.counts('a', '10.0.0.2:80')).toEqual({ requests: 0, errors: 0 });
  });

  it('forgets addresses a service no longer has', () => {
    const traffic = new InstanceTraffic();
    traffic.attempt('a', '10.0.0.1:80', undefined);
    traffic.attempt('a', '10.0.0.2:80', undefined);
    traffic.retain('a', ['10.0.0.2:80']);
    expect(traffic.counts('a', '10.0.0.1:80').requests).toBe(0);
    expect(traffic.counts('a', '10.0.0.2:80').requests).toBe(1);
  });

  it('lets go of a service whose addresses are all gone, so names that come and go leave nothing behind', () => {
    const traffic = new InstanceTraffic();
    traffic.attempt('canary-1', '10.0.0.1:80', undefined);
    traffic.add('canary-1', '10.0.0.2:80', 3, 0);
    traffic.retain('canary-1', []);
    // Internal state: the counts read as zeros either way, only the map shows the entry is gone.
    expect([...(traffic as unknown as { services: Map<string, unknown> }).services.keys()]).toEqual([]);
    traffic.attempt('canary-1', '10.0.0.1:80', undefined);
    expect(traffic.counts('canary-1', '10.0.0.1:80')).toEqual({ requests: 1, errors: 0 });
  });
});
