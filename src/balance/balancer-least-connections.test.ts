import { describe, expect, it } from 'vitest';
import { LeastConnectionsBalancer } from './balancer-least-connections.ts';
import { pickedId, testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';

function take(balancer: LeastConnectionsBalancer, count: number): PickedEndpoint[] {
  return Array.from({ length: count }, () => balancer.picker.pick({}) as PickedEndpoint);
}

describe('LeastConnectionsBalancer (nginx weighted least_conn)', () => {
  it('sends the next request to the member with the fewest requests in flight', () => {
    const balancer = new LeastConnectionsBalancer();
    balancer.update(testEndpoints('a', 'b', 'c'));
    const open = take(balancer, 6);
    for (const pick of open.filter((pick) => pick.instance.id === 'b')) pick.done({ ok: true, latencyMs: 1 });
    expect(take(balancer, 2).map(pickedId)).toEqual(['b', 'b']);
  });

  it('compares in-flight requests per unit of weight', () => {
    const balancer = new LeastConnectionsBalancer();
    balancer.update(testEndpoints(['a', 3], ['b', 1]));
    // 3 on a (1 per weight) against 2 on b (2 per weight): a is less loaded.
    const picks = take(balancer, 4);
    expect(picks.map(pickedId).sort()).toEqual(['a', 'a', 'a', 'b']);
    balancer.picker.pick({});
    expect(balancer.member('a.svc.test:8080')!.inFlight + balancer.member('b.svc.test:8080')!.inFlight).toBe(5);
    expect(balancer.member('a.svc.test:8080')!.inFlight).toBe(4);
  });

  it('breaks ties by smooth weighted round-robin, so an idle service sees a a b a c a a for weights 5,1,1', () => {
    const balancer = new LeastConnectionsBalancer();
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1]));
    const sequence = Array.from({ length: 7 }, () => {
      const pick = balancer.picker.pick({}) as PickedEndpoint;
      pick.done({ ok: true, latencyMs: 1 });
      return pick.instance.id;
    });
    expect(sequence.join(' ')).toBe('a a b a c a a');
  });
});
