import { describe, expect, it } from 'vitest';
import { createBalancer } from './balancer-factory.ts';
import { BalancerKeeper } from './balancer-keeper.ts';
import type { Balancer } from './balancer.ts';
import { EVERY_ALGORITHM, pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { PickContext, PickedEndpoint } from './picker.ts';
import { stickyId } from './sticky.ts';

const SALT = 'svc';
const address = (id: string) => `${id}.svc.test:8080`;

describe('stickyId', () => {
  it('is 16 hex characters, stable, and differs by salt and by address without showing either', () => {
    const id = stickyId(SALT, address('a'));
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(stickyId(SALT, address('a'))).toBe(id);
    expect(stickyId('other', address('a'))).not.toBe(id);
    expect(stickyId(SALT, address('b'))).not.toBe(id);
    expect(id).not.toContain('svc.test');
  });
});

describe.each(EVERY_ALGORITHM)('sticky sessions with $algorithm', ({ config }) => {
  it('picks the member the sticky id names every time, counting it in flight', () => {
    const balancer = createBalancer(config, { stickySalt: SALT });
    balancer.update(testEndpoints('a', 'b', 'c'));
    const sticky = stickyId(SALT, address('b'));
    const picks = Array.from({ length: 12 }, () => balancer.picker.pick({ sticky, headers: { 'x-user': 'u1' } }) as PickedEndpoint);
    expect(picks.map(pickedId)).toEqual(Array(12).fill('b'));
    expect(balancer.member(address('b'))?.inFlight).toBe(12);
    expect(pickedId(balancer.picker.peek({ sticky }))).toBe('b');
    for (const pick of picks) pick.done({ ok: true, latencyMs: 1 });
    expect(balancer.member(address('b'))?.inFlight).toBe(0);
  });

  it('leaves the choice to the algorithm for an id no member has, picking as a balancer without sticky sessions', () => {
    const sticky = createBalancer(config, { stickySalt: SALT, random: seededRandom(7) });
    const plain = createBalancer(config, { random: seededRandom(7) });
    sticky.update(testEndpoints('a', 'b', 'c'));
    plain.update(testEndpoints('a', 'b', 'c'));
    const sequence = (balancer: Balancer, context: PickContext) => Array.from({ length: 12 }, (_, index) => pickedId(balancer.picker.pick({ ...context, headers: { 'x-user': `u${index}` } })));
    expect(sequence(sticky, { sticky: 'ffffffffffffffff' })).toEqual(sequence(plain, {}));
  });

  it.each([
    { case: 'a member that may take no traffic', endpoints: testEndpoints('a', 'b').map((endpoint) => (endpoint.instance.id === 'b' ? { ...endpoint, routable: false } : endpoint)) },
    { case: 'a member of weight 0', endpoints: testEndpoints('a', ['b', 0]) },
    { case: 'a draining member', endpoints: testEndpoints('a', 'b').map((endpoint) => (endpoint.instance.id === 'b' ? { ...endpoint, instance: { ...endpoint.instance, draining: true } } : endpoint)) },
  ])('never picks $case for its sticky id', ({ endpoints }) => {
    const balancer = createBalancer(config, { stickySalt: SALT });
    balancer.update(endpoints);
    const sticky = stickyId(SALT, address('b'));
    const picks = Array.from({ length: 6 }, () => pickedId(balancer.picker.pick({ sticky, headers: { 'x-user': 'u1' } })));
    expect(new Set(picks)).toEqual(new Set(['a']));
  });

  it('leaves a sticky id of a member routable only because its service panics to the algorithm, as without sticky sessions', () => {
    // In panic every member is routable: the algorithm spreads load over all, but a cookie pins no client to a failing one.
    const endpoints = testEndpoints('a', 'b', 'c').map((endpoint) => (endpoint.instance.id === 'b' ? { ...endpoint, healthy: false } : endpoint));
    const sticky = createBalancer(config, { stickySalt: SALT, random: seededRandom(5) });
    const plain = createBalancer(config, { random: seededRandom(5) });
    sticky.update(endpoints);
    plain.update(endpoints);
    const sequence = (balancer: Balancer, context: PickContext) => Array.from({ length: 12 }, (_, index) => pickedId(balancer.picker.pick({ ...context, headers: { 'x-user': `u${index}` } })));
    expect(sequence(sticky, { sticky: stickyId(SALT, address('b')) })).toEqual(sequence(plain, {}));
  });

  it('leaves a retry that tried the named member to the algorithm, as without sticky sessions', () => {
    const sticky = createBalancer(config, { stickySalt: SALT, random: seededRandom(3) });
    const plain = createBalancer(config, { random: seededRandom(3) });
    sticky.update(testEndpoints('a', 'b', 'c'));
    plain.update(testEndpoints('a', 'b', 'c'));
    const tried = [address('a')];
    const retry = (balancer: Balancer, context: PickContext) => Array.from({ length: 6 }, () => pickedId(balancer.picker.pick({ ...context, tried, headers: { 'x-user': 'u1' } })));
    expect(retry(sticky, { sticky: stickyId(SALT, address('a')) })).toEqual(retry(plain, {}));
  });

  it('ignores the sticky id when made without a salt', () => {
    const balancer = createBalancer(config, { random: () => 0 });
    balancer.update(testEndpoints('a', 'b'));
    const sticky = stickyId(SALT, address('b'));
    const seen = new Set(Array.from({ length: 8 }, () => pickedId(balancer.picker.pick({ sticky, headers: { 'x-user': 'u1' } }))));
    expect(seen.has('a')).toBe(true);
  });
});

describe('sticky sessions across a keeper', () => {
  it("gives a subset's balancer its service's salt, and makes a new balancer when sticky turns on", () => {
    const config = { algorithm: 'round-robin' } as const;
    const service = BalancerKeeper.keep(undefined, config, undefined, () => undefined, undefined, SALT);
    const subset = BalancerKeeper.keep(undefined, config, undefined, () => undefined, service.balancer);
    expect(subset.balancer.stickySalt).toBe(SALT);
    const plain = BalancerKeeper.keep(undefined, config, undefined, () => undefined);
    expect(BalancerKeeper.keep(plain, config, undefined, () => undefined, undefined, SALT)).not.toBe(plain);
    expect(BalancerKeeper.keep(service, config, undefined, () => undefined, undefined, SALT)).toBe(service);
  });
});
