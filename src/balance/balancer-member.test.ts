import { describe, expect, it } from 'vitest';
import type { BalancerBase } from './balancer-base.ts';
import { createBalancer } from './balancer-factory.ts';
import type { EwmaMember } from './balancer-p2c-ewma.ts';
import { EVERY_ALGORITHM, pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint, PickOutcome } from './picker.ts';
import { INDEXED_PICK_MIN_MEMBERS } from './smooth-weighted-set.ts';

const OK: PickOutcome = { ok: true, latencyMs: 5 };
const address = (id: string) => `${id}.svc.test:8080`;

function pick(balancer: ReturnType<typeof createBalancer>, user = 'u'): PickedEndpoint {
  const result = balancer.picker.pick({ headers: { 'x-user': user } });
  if (result.kind !== 'endpoint') throw new Error(`expected an endpoint, got ${result.reason}`);
  return result;
}

describe.each(EVERY_ALGORITHM)('a held pick ($algorithm)', ({ config }) => {
  it('reports its outcome at done, keeps its in-flight slot until released, and releases it once', () => {
    const outcomes: string[] = [];
    const balancer = createBalancer(config, { onOutcome: (picked, outcome) => outcomes.push(`${picked}:${outcome.ok}:${outcome.latencyMs}`) });
    balancer.update(testEndpoints('a'));
    const tunnel = pick(balancer);
    const member = balancer.member(address('a'))!;
    const release = tunnel.hold();
    tunnel.done(OK);
    expect(outcomes).toEqual([`${address('a')}:true:5`]);
    expect(member.inFlight).toBe(1);
    release();
    expect(member.inFlight).toBe(0);
    release();
    tunnel.done({ ok: false, latencyMs: 9, errorClass: 'http-5xx' });
    expect(member.inFlight).toBe(0);
    expect(outcomes).toHaveLength(1);
  });

  it('released before done, still reports the outcome at done and takes nothing off the count twice', () => {
    const outcomes: boolean[] = [];
    const balancer = createBalancer(config, { onOutcome: (_picked, outcome) => outcomes.push(outcome.ok) });
    balancer.update(testEndpoints('a'));
    const other = pick(balancer);
    const tunnel = pick(balancer);
    const member = balancer.member(address('a'))!;
    tunnel.hold()();
    expect(member.inFlight).toBe(1);
    tunnel.done(OK);
    expect(member.inFlight).toBe(1);
    expect(outcomes).toEqual([true]);
    other.done(OK);
    expect(member.inFlight).toBe(0);
  });

  it('holds nothing when hold comes after done, or a second time', () => {
    const balancer = createBalancer(config);
    balancer.update(testEndpoints('a'));
    const member = balancer.member(address('a'))!;
    const late = pick(balancer);
    late.done(OK);
    late.hold()();
    expect(member.inFlight).toBe(0);
    const twice = pick(balancer);
    const release = twice.hold();
    twice.hold()();
    twice.done(OK);
    expect(member.inFlight).toBe(1);
    release();
    expect(member.inFlight).toBe(0);
  });

  it('keeps a member that left the registry while the pick is held, and lets its host load go at the release', () => {
    const balancer = createBalancer(config, { random: seededRandom(7) });
    balancer.update(testEndpoints('a', 'b'));
    const picks = Array.from({ length: 8 }, (_, index) => pick(balancer, `user-${index}`));
    const onB = picks.find((picked) => picked.instance.id === 'b')!;
    const release = onB.hold();
    for (const picked of picks) picked.done(OK);
    balancer.update(testEndpoints('a'));
    expect(balancer.hostLoads.size).toBe(2);
    release();
    expect(balancer.hostLoads.size).toBe(1);
    // A returning b starts idle: nothing of the tunnel was leaked.
    balancer.update(testEndpoints('a', 'b'));
    expect(balancer.member(address('b'))!.inFlight).toBe(0);
  });
});

describe('held picks and load-aware balancers', () => {
  it.each([2, INDEXED_PICK_MIN_MEMBERS])('least-connections over %i members spreads held picks answered at once, and sends the next picks to the member whose tunnels closed', (size) => {
    const ids = Array.from({ length: size }, (_, index) => `m${index}`);
    const balancer = createBalancer({ algorithm: 'least-connections' });
    balancer.update(testEndpoints(...ids));
    const tunnels = Array.from({ length: 3 * size }, () => {
      const tunnel = pick(balancer);
      const release = tunnel.hold();
      tunnel.done(OK);
      return { id: tunnel.instance.id, release };
    });
    // Released at done, every pick would have gone to the same (idle) member.
    for (const id of ids) expect(tunnels.filter((tunnel) => tunnel.id === id)).toHaveLength(3);
    for (const tunnel of tunnels.filter((held) => held.id === 'm1')) tunnel.release();
    expect([pickedId(pick(balancer)), pickedId(pick(balancer)), pickedId(pick(balancer))]).toEqual(['m1', 'm1', 'm1']);
  });

  it("p2c-ewma learns the handshake's latency at done, not the tunnel's lifetime at the release, and counts the tunnel as load meanwhile", () => {
    let now = 0;
    const balancer = createBalancer({ algorithm: 'p2c-ewma' }, { now: () => now, random: seededRandom(3) }) as unknown as BalancerBase<EwmaMember>;
    balancer.update(testEndpoints('a'));
    const tunnel = pick(balancer as unknown as ReturnType<typeof createBalancer>);
    const release = tunnel.hold();
    tunnel.done(OK);
    const member = balancer.member(address('a'))!;
    const estimate = member.latencyMs;
    expect(estimate).toBeGreaterThan(0);
    expect(estimate).toBeLessThanOrEqual(5);
    expect(member.inFlight).toBe(1);
    now += 600_000;
    release();
    expect(member.latencyMs).toBe(estimate);
    expect(member.inFlight).toBe(0);
  });

  it("a tunnel held through a subset loads its host for the service's least-connections until released", () => {
    const service = createBalancer({ algorithm: 'least-connections' });
    const subset = createBalancer({ algorithm: 'least-connections' }, { hostLoads: service.hostLoads });
    service.update(testEndpoints('a', 'b'));
    subset.update(testEndpoints('a'));
    const tunnel = pick(subset);
    const release = tunnel.hold();
    tunnel.done(OK);
    expect(service.member(address('a'))!.inFlight).toBe(1);
    expect(pickedId(pick(service))).toBe('b');
    release();
    expect(service.member(address('a'))!.inFlight).toBe(0);
    expect(subset.member(address('a'))!.inFlight).toBe(0);
  });
});
