import { describe, expect, it } from 'vitest';
import type { ProviderStatus } from '../../src/discovery/provider.ts';
import { byAddress, endpointState } from './admin-testing.ts';
import { diffEndpoints, diffStatuses } from './event-diff.ts';

describe('diffEndpoints', () => {
  it('reports every endpoint of a first snapshot as added, with its source and health', () => {
    const changes = diffEndpoints('svc', new Map(), [endpointState(1)], false);
    expect(changes).toEqual([
      {
        type: 'instance-added',
        data: {
          service: 'svc',
          instance: { id: 'i-1', address: '10.2.0.1:8080', host: '10.2.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {}, source: 'zk:test' },
          health: { state: 'healthy', reason: 'registered', text: 'in the registry; no active checks' },
          routable: true,
        },
      },
    ]);
  });

  it('reports nothing when nothing changed', () => {
    expect(diffEndpoints('svc', byAddress(endpointState(1), endpointState(2)), [endpointState(1), endpointState(2)], false)).toEqual([]);
  });

  it('reports a departed registry member as removed because it left the registry', () => {
    expect(diffEndpoints('svc', byAddress(endpointState(1), endpointState(2)), [endpointState(1)], false)).toEqual([
      { type: 'instance-removed', data: { service: 'svc', id: 'i-2', address: '10.2.0.2:8080', reason: 'left-registry' } },
    ]);
  });

  it('reports an endpoint kept after leaving the registry as a health change, and its later removal as the end of its grace', () => {
    const kept = endpointState(2, { inRegistry: false, source: undefined, health: { state: 'healthy', reason: 'left-registry' } });
    const leaving = diffEndpoints('svc', byAddress(endpointState(2, { health: { state: 'healthy', reason: 'check-passing' } })), [kept], false);
    expect(leaving).toMatchObject([{ type: 'health-changed', data: { from: { reason: 'check-passing' }, to: { state: 'healthy', reason: 'left-registry' } } }]);
    expect(diffEndpoints('svc', byAddress(kept), [], false)).toMatchObject([{ type: 'instance-removed', data: { reason: 'grace-over' } }]);
  });

  it('reports the drain mark set and withdrawn, and nothing while it stays', () => {
    const plain = endpointState(1);
    const marked = endpointState(1, { instance: { ...plain.instance, draining: true } });
    const data = { service: 'svc', id: 'i-1', address: '10.2.0.1:8080' };
    expect(diffEndpoints('svc', byAddress(plain), [marked], false)).toEqual([{ type: 'draining-changed', data: { ...data, draining: true } }]);
    expect(diffEndpoints('svc', byAddress(marked), [marked], false)).toEqual([]);
    expect(diffEndpoints('svc', byAddress(marked), [plain], false)).toEqual([{ type: 'draining-changed', data: { ...data, draining: false } }]);
  });

  it('reports a weight change and a health flip of the same endpoint as two events', () => {
    const before = endpointState(1);
    const after = endpointState(1, { weight: 5, health: { state: 'unhealthy', reason: 'ejected' }, routable: false, ejectedUntil: Date.UTC(2030, 0, 1) });
    expect(diffEndpoints('svc', byAddress(before), [after], true)).toEqual([
      { type: 'weight-changed', data: { service: 'svc', id: 'i-1', address: '10.2.0.1:8080', from: 1, to: 5 } },
      {
        type: 'health-changed',
        data: {
          service: 'svc',
          id: 'i-1',
          address: '10.2.0.1:8080',
          from: { state: 'healthy', reason: 'registered', text: 'in the registry; no active checks' },
          to: { state: 'unhealthy', reason: 'ejected', text: 'ejected by outlier detection' },
          routable: false,
          ejectedUntil: '2030-01-01T00:00:00.000Z',
          panic: true,
        },
      },
    ]);
  });

  it('reports a change of the routing verdict alone (panic) as a health change', () => {
    const changes = diffEndpoints('svc', byAddress(endpointState(1, { routable: false })), [endpointState(1, { routable: true })], true);
    expect(changes).toMatchObject([{ type: 'health-changed', data: { routable: true, panic: true } }]);
  });
});

describe('diffStatuses', () => {
  const status = (provider: string, state: ProviderStatus['state'], since: number, reason?: string): ProviderStatus => ({ provider, state, since, ...(reason ? { reason } : {}) });

  it('reports a provider seen for the first time and every change of its state', () => {
    const first = diffStatuses(new Map(), [status('zk', 'connecting', 0)]);
    expect(first).toEqual([{ type: 'provider-status', data: { provider: 'zk', state: 'connecting', previous: null, since: '1970-01-01T00:00:00.000Z', reason: null } }]);
    const previous = new Map([['zk', status('zk', 'connected', 0)], ['etcd', status('etcd', 'connected', 0)]]);
    const changes = diffStatuses(previous, [status('zk', 'stale', 1_000, 'session expired'), status('etcd', 'connected', 0)]);
    expect(changes).toEqual([{ type: 'provider-status', data: { provider: 'zk', state: 'stale', previous: 'connected', since: '1970-01-01T00:00:01.000Z', reason: 'session expired' } }]);
  });
});
