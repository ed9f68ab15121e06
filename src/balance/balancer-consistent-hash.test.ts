import { describe, expect, it } from 'vitest';
import { ConsistentHashBalancer } from './balancer-consistent-hash.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { HashKeySource } from './hash-key.ts';

const KEYS = Array.from({ length: 10_000 }, (_, index) => `key-${index}`);
const ids = (count: number, from = 0) => Array.from({ length: count }, (_, index) => `node-${from + index}`);

function owners(balancer: ConsistentHashBalancer): string[] {
  return KEYS.map((key) => pickedId(balancer.picker.pick({ headers: { 'x-key': key } })));
}

function hashBalancer(extra: { balanceFactor?: number; key?: HashKeySource } = {}): ConsistentHashBalancer {
  return new ConsistentHashBalancer({ key: extra.key ?? { from: 'header', name: 'X-Key' }, random: seededRandom(11), ...extra });
}

describe('ConsistentHashBalancer', () => {
  it('moves at most 1/11 + 2% of 10,000 keys when an 11th member joins ten, all of them to the newcomer', () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(10)));
    const before = owners(balancer);
    balancer.update(testEndpoints(...ids(11)));
    const after = owners(balancer);
    const moved = KEYS.filter((_, index) => before[index] !== after[index]).map((_, index) => index);
    const movedTo = new Set(KEYS.flatMap((_, index) => (before[index] !== after[index] ? [after[index]] : [])));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.length).toBeLessThanOrEqual(Math.floor(KEYS.length * (1 / 11 + 0.02)));
    expect(movedTo).toEqual(new Set(['node-10']));
  });

  it.each([
    { how: 'leaves the registry', update: (balancer: ConsistentHashBalancer) => balancer.update(testEndpoints(...ids(10).filter((id) => id !== 'node-3'))) },
    {
      how: 'becomes unroutable',
      update: (balancer: ConsistentHashBalancer) => balancer.update(testEndpoints(...ids(10)).map((endpoint) => ({ ...endpoint, routable: endpoint.instance.id !== 'node-3' }))),
    },
  ])('moves only the keys of a member that $how', ({ update }) => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(10)));
    const before = owners(balancer);
    update(balancer);
    const after = owners(balancer);
    KEYS.forEach((_, index) => {
      if (before[index] !== 'node-3') expect(after[index]).toBe(before[index]);
      else expect(after[index]).not.toBe('node-3');
    });
    expect(before.filter((owner) => owner === 'node-3').length).toBeGreaterThan(0);
  });

  it('gives the same keys back to a member that returns', () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(10)));
    const before = owners(balancer);
    balancer.update(testEndpoints(...ids(9)));
    balancer.update(testEndpoints(...ids(10)));
    expect(owners(balancer)).toEqual(before);
  });

  it('maps keys the same way whatever order the members are listed in', () => {
    const forward = hashBalancer();
    forward.update(testEndpoints(...ids(10)));
    const backward = hashBalancer();
    backward.update(testEndpoints(...ids(10).reverse()));
    expect(owners(backward)).toEqual(owners(forward));
  });

  it('moves keys only between the reweighted member and the others when one weight changes', () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(10)));
    const before = owners(balancer);
    balancer.update(testEndpoints(...ids(10).map((id): [string, number] => [id, id === 'node-4' ? 3 : 1])));
    const after = owners(balancer);
    KEYS.forEach((_, index) => {
      if (before[index] !== after[index]) expect(after[index]).toBe('node-4');
    });
  });

  it.each([
    { source: { from: 'client-ip' }, same: { clientIp: '192.0.2.7' }, other: { clientIp: '192.0.2.8' } },
    { source: { from: 'header', name: 'X-Tenant' }, same: { headers: { 'x-tenant': 'acme' } }, other: { headers: { 'x-tenant': 'globex' } } },
    { source: { from: 'cookie', name: 'session' }, same: { headers: { cookie: 'a=1; session=s-42' } }, other: { headers: { cookie: 'session=s-43' } } },
    { source: { from: 'path' }, same: { url: '/users/7?page=2' }, other: { url: '/users/8' } },
    { source: { from: 'query', name: 'tenant' }, same: { url: '/x?tenant=acme&y=1' }, other: { url: '/x?tenant=globex' } },
  ] as const)('sends every request with the same $source.from key to the same member', ({ source, same }) => {
    const balancer = hashBalancer({ key: source });
    balancer.update(testEndpoints(...ids(10)));
    const first = pickedId(balancer.picker.pick(same));
    for (let index = 0; index < 50; index += 1) expect(pickedId(balancer.picker.pick(same))).toBe(first);
  });

  it('spreads requests without a key over all members rather than failing them', () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(4)));
    const picked = new Set(Array.from({ length: 400 }, () => pickedId(balancer.picker.pick({}))));
    expect(picked).toEqual(new Set(ids(4)));
  });

  it('with bounded loads, sends a hot key past a member that holds its capacity', () => {
    const balancer = hashBalancer({ balanceFactor: 1.25 });
    balancer.update(testEndpoints(...ids(4)));
    const hot = { headers: { 'x-key': 'hot' } };
    const probe = balancer.picker.pick(hot);
    const home = pickedId(probe);
    if (probe.kind === 'endpoint') probe.done({ ok: true, latencyMs: 1 });
    const open = Array.from({ length: 40 }, () => balancer.picker.pick(hot));
    const perMember = new Map<string, number>();
    for (const pick of open) perMember.set(pickedId(pick), (perMember.get(pickedId(pick)) ?? 0) + 1);
    // The 40th pick sees 39 in flight over 4 equal members at c = 1.25: capacity ⌈1.25 × 40 / 4⌉ = 13.
    expect(Math.max(...perMember.values())).toBeLessThanOrEqual(13);
    expect(perMember.get(home)).toBeGreaterThanOrEqual(12);
    expect(perMember.size).toBeGreaterThan(1);
    for (const pick of open) if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
    expect(pickedId(balancer.picker.pick(hot))).toBe(home);
  });

  it('without bounded loads, keeps a hot key on its member however loaded', () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(4)));
    const hot = { headers: { 'x-key': 'hot' } };
    expect(new Set(Array.from({ length: 40 }, () => pickedId(balancer.picker.pick(hot)))).size).toBe(1);
  });

  it('halves points per weight while the ring would outgrow its cap, and doubles them back once it has shrunk', () => {
    const balancer = new ConsistentHashBalancer({ key: { from: 'header', name: 'x-key' }, maxRingPoints: 1_000 });
    balancer.update(testEndpoints(...ids(10).map((id): [string, number] => [id, 10])));
    // Total weight 100: 160 → 80 → 40 → 20 → 10 points per weight fits 1,000.
    expect(balancer.ringPoints).toBe(1_000);
    expect(new Set(owners(balancer)).size).toBe(10);
    balancer.update(testEndpoints(...ids(2).map((id): [string, number] => [id, 10])));
    // Total weight 20: 10 → 20 points per weight; doubling again would fill more than half the cap.
    expect(balancer.ringPoints).toBe(400);
  });

  it('keeps the ring within its cap when weights are so large that each unit of weight gets less than one point', () => {
    const balancer = new ConsistentHashBalancer({ key: { from: 'header', name: 'x-key' }, maxRingPoints: 1_000 });
    balancer.update(testEndpoints(['node-0', 1_000_000], ['node-1', 1_000_000], ['node-2', 2_000_000]));
    expect(balancer.ringPoints).toBeLessThanOrEqual(1_000);
    expect(balancer.ringPoints).toBeGreaterThan(500);
    // Shares still follow the weights: node-2 holds about half of the keys.
    const counts = new Map<string, number>();
    for (const owner of owners(balancer)) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    expect(counts.get('node-2')! / KEYS.length).toBeGreaterThan(0.4);
    expect(counts.get('node-2')! / KEYS.length).toBeLessThan(0.6);
    expect(counts.get('node-0')).toBeGreaterThan(1_500);
    expect(counts.get('node-1')).toBeGreaterThan(1_500);
  });

  it("sends a retry that tried every member back to the key's own member, not to the first member listed", () => {
    const balancer = hashBalancer();
    balancer.update(testEndpoints(...ids(10)));
    const everyone = ids(10).map((id) => `${id}.svc.test:8080`);
    const sample = KEYS.slice(0, 200);
    const repeats = sample.map((key) => pickedId(balancer.picker.pick({ headers: { 'x-key': key }, tried: everyone })));
    expect(repeats).toEqual(sample.map((key) => pickedId(balancer.picker.pick({ headers: { 'x-key': key } }))));
  });
});
