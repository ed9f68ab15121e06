import { describe, expect, it } from 'vitest';
import { RoundRobinBalancer } from './balancer-round-robin.ts';
import { pickedId, testEndpoints } from './balancer-testing.ts';

const picks = (balancer: RoundRobinBalancer, count: number) => Array.from({ length: count }, () => pickedId(balancer.picker.pick({})));

describe('RoundRobinBalancer', () => {
  it('visits every member once per cycle, ignoring weights other than 0', () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 0], ['d', 2]));
    expect(picks(balancer, 6)).toEqual(['a', 'b', 'd', 'a', 'b', 'd']);
  });

  it('starts at a random member so gateways started together spread their first requests', () => {
    const first = [0, 0.34, 0.67].map((random) => {
      const balancer = new RoundRobinBalancer({ random: () => random });
      balancer.update(testEndpoints('a', 'b', 'c'));
      return picks(balancer, 1)[0];
    });
    expect(new Set(first).size).toBeGreaterThan(1);
  });

  it('continues from its position when an update leaves the set unchanged', () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update(testEndpoints('a', 'b', 'c'));
    const before = picks(balancer, 2);
    balancer.update(testEndpoints('a', 'b', 'c'));
    expect([...before, ...picks(balancer, 4)]).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});
