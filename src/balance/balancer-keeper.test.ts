import { describe, expect, it } from 'vitest';
import { BalancerKeeper } from './balancer-keeper.ts';
import { testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';

describe('BalancerKeeper', () => {
  it('keeps the balancer, with its picks in flight, for the same settings and sends its outcomes to the latest listener', () => {
    const heard: string[] = [];
    const first = BalancerKeeper.keep(undefined, { algorithm: 'p2c-ewma', decayMs: 5_000 }, undefined, (address) => heard.push(`first ${address}`));
    first.balancer.update(testEndpoints('a'));
    const pick = first.balancer.picker.pick({}) as PickedEndpoint;
    const second = BalancerKeeper.keep(first, { algorithm: 'p2c-ewma', decayMs: 5_000 }, undefined, (address) => heard.push(`second ${address}`));
    expect(second).toBe(first);
    expect(second.balancer.member(pick.address)?.inFlight).toBe(1);
    pick.done({ ok: true, latencyMs: 3 });
    expect(heard).toEqual([`second ${pick.address}`]);
    expect(second.balancer.member(pick.address)?.latencyMs).toBeGreaterThan(0);
  });

  it('keeps a subset\'s balancer, sharing its service\'s host loads, only while the service\'s balancer is the same', () => {
    const config = { algorithm: 'least-connections' } as const;
    const service = BalancerKeeper.keep(undefined, config, undefined, () => undefined);
    const subset = BalancerKeeper.keep(undefined, config, undefined, () => undefined, service.balancer);
    expect(subset.balancer.hostLoads).toBe(service.balancer.hostLoads);
    expect(BalancerKeeper.keep(subset, config, undefined, () => undefined, service.balancer)).toBe(subset);
    const otherService = BalancerKeeper.keep(undefined, config, undefined, () => undefined);
    const remade = BalancerKeeper.keep(subset, config, undefined, () => undefined, otherService.balancer);
    expect(remade).not.toBe(subset);
    expect(remade.balancer.hostLoads).toBe(otherService.balancer.hostLoads);
  });

  it.each([
    { change: 'another algorithm', config: { algorithm: 'least-connections' }, slowStart: undefined },
    { change: 'another option of the algorithm', config: { algorithm: 'p2c-ewma', decayMs: 1_000 }, slowStart: undefined },
    { change: 'slow start turned on', config: { algorithm: 'p2c-ewma', decayMs: 5_000 }, slowStart: { windowMs: 10_000, aggression: 1, minWeightPercent: 10 } },
  ] as const)('makes a new balancer for $change', ({ config, slowStart }) => {
    const first = BalancerKeeper.keep(undefined, { algorithm: 'p2c-ewma', decayMs: 5_000 }, undefined, () => undefined);
    const next = BalancerKeeper.keep(first, config, slowStart, () => undefined);
    expect(next).not.toBe(first);
    expect(next.balancer).not.toBe(first.balancer);
  });
});
