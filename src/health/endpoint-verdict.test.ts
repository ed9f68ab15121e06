import { describe, expect, it } from 'vitest';
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import { snapshotOf } from './endpoint-verdict.ts';

function endpoint(id: string, active: 'healthy' | 'unhealthy', draining = false) {
  const instance: Instance = { id, service: 'svc', host: `${id}.test`, port: 80, weight: 1, protocol: 'http', metadata: {}, ...(draining ? { draining } : {}) };
  return { address: instanceAddress(instance), instance, inRegistry: true, active, ejected: false };
}

describe('snapshotOf', () => {
  it('leaves draining instances out of the panic share, so leaving on purpose neither causes nor hides panic', () => {
    // 1 of 3 serving instances healthy is below 50 %; two healthy draining ones must not lift it to 3 of 5.
    const endpoints = [endpoint('a', 'healthy'), endpoint('b', 'unhealthy'), endpoint('c', 'unhealthy'), endpoint('d', 'healthy', true), endpoint('e', 'healthy', true)];
    expect(snapshotOf('svc', endpoints, 50).panic).toBe(true);
    // Two of three serving instances healthy: no panic, however many others drain.
    const calm = [endpoint('a', 'healthy'), endpoint('b', 'healthy'), endpoint('c', 'unhealthy'), endpoint('d', 'unhealthy', true)];
    expect(snapshotOf('svc', calm, 50).panic).toBe(false);
  });
});
