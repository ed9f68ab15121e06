import { describe, expect, it } from 'vitest';
import { createBalancer } from './balancer-factory.ts';
import { pickedId, testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';

const OK = { ok: true, latencyMs: 1 } as const;
const address = (id: string) => `${id}.svc.test:8080`;

function pick(balancer: ReturnType<typeof createBalancer>): PickedEndpoint {
  const result = balancer.picker.pick({});
  if (result.kind !== 'endpoint') throw new Error(`expected an endpoint, got ${result.reason}`);
  return result;
}

describe('host loads shared between a service balancer and a subset balancer', () => {
  it('re-files a host in the service\'s least-connections index when a pick through the subset loads it', () => {
    const ids = Array.from({ length: 40 }, (_, index) => `m${index}`);
    const service = createBalancer({ algorithm: 'least-connections' });
    const subset = createBalancer({ algorithm: 'least-connections' }, { hostLoads: service.hostLoads });
    service.update(testEndpoints(...ids));
    subset.update(testEndpoints('m0'));
    const throughSubset = pick(subset);
    // 40 members: the service picks through its index, which must see m0 loaded and give it nothing
    // until every other member carries as much.
    const first = Array.from({ length: 39 }, () => pickedId(pick(service)));
    expect(new Set(first)).toEqual(new Set(ids.slice(1)));
    throughSubset.done(OK);
    // m0 is idle again and the others carry one each: the index must have seen the answer too.
    expect(pickedId(pick(service))).toBe('m0');
  });

  it('holds a member that left both balancers while a pick through the other is in flight, and lets it go when that pick ends', () => {
    const service = createBalancer({ algorithm: 'p2c-ewma' });
    const subset = createBalancer({ algorithm: 'p2c-ewma' }, { hostLoads: service.hostLoads });
    service.update(testEndpoints('a', 'b'));
    subset.update(testEndpoints('b'));
    const onB = pick(subset);
    const held = service.member(address('b'));
    service.update(testEndpoints('a'));
    subset.update([]);
    // Back in the service only (a re-registration): the same member, still loaded by the subset's pick.
    service.update(testEndpoints('a', 'b'));
    expect(service.member(address('b'))).toBe(held);
    expect(held?.inFlight).toBe(1);
    service.update(testEndpoints('a'));
    expect(service.hostLoads.size).toBe(2);
    onB.done(OK);
    // Neither balancer holds b any more: its load is forgotten, and a returning b starts idle.
    expect(service.hostLoads.size).toBe(1);
    service.update(testEndpoints('a', 'b'));
    expect(service.member(address('b'))).not.toBe(held);
  });

  it('counts the picks already in flight on a host in a subset made later', () => {
    const service = createBalancer({ algorithm: 'least-connections' });
    service.update(testEndpoints('a', 'b'));
    const picks = [pick(service), pick(service), pick(service)];
    const subset = createBalancer({ algorithm: 'least-connections' }, { hostLoads: service.hostLoads });
    subset.update(testEndpoints('a', 'b'));
    const loadedId = picks.filter((picked) => picked.instance.id === 'a').length === 2 ? 'a' : 'b';
    expect(subset.member(address(loadedId))?.inFlight).toBe(2);
    expect(pickedId(pick(subset))).toBe(loadedId === 'a' ? 'b' : 'a');
  });

  it('stops telling a closed subset balancer of moves, and forgets a host once only the closed one held it', () => {
    const service = createBalancer({ algorithm: 'least-connections' });
    const subset = createBalancer({ algorithm: 'least-connections' }, { hostLoads: service.hostLoads });
    service.update(testEndpoints('a', 'b'));
    subset.update(testEndpoints('b'));
    const onB = pick(subset);
    subset.close();
    subset.close();
    service.update(testEndpoints('a'));
    expect(service.hostLoads.size).toBe(2);
    // A pick made before the close still counts on its host until done, and releases the service's hold.
    onB.done(OK);
    expect(service.hostLoads.size).toBe(1);
  });

  it('answers no-instances from the pickers of a closed subset balancer, counting nothing on the service\'s hosts, and takes no more updates', () => {
    const service = createBalancer({ algorithm: 'least-connections' });
    const subset = createBalancer({ algorithm: 'least-connections' }, { hostLoads: service.hostLoads });
    service.update(testEndpoints('a', 'b'));
    const kept = subset.update(testEndpoints('b'));
    subset.close();
    // A request holding the picker across the close (a retry reading a dropped subset) gets nothing here.
    expect(kept.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    expect(subset.picker.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    expect(service.member(address('b'))?.inFlight).toBe(0);
    // The service's least-connections still sees b idle: a then b, not a twice.
    expect([pickedId(pick(service)), pickedId(pick(service))]).toEqual(['a', 'b']);
    subset.update(testEndpoints('a', 'b', 'c'));
    expect(subset.picker.pick({}).kind).toBe('none');
    expect(service.hostLoads.size).toBe(2);
  });
});
