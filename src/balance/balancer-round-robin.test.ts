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

  it('sends a retry to the first member after the cursor it has not tried, and goes on after that member', () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update(testEndpoints('a', 'b', 'c', 'd', 'e', 'f'));
    // Four tried in a row from the cursor: a cursor blind to them gave the search a, b, c, d, and it ended on a repeat.
    const retry = pickedId(balancer.picker.pick({ tried: ['a', 'b', 'c', 'd'].map((id) => `${id}.svc.test:8080`) }));
    expect([retry, ...picks(balancer, 3)]).toEqual(['e', 'f', 'a', 'b']);
  });

  it('takes the usual turn for a retry whose tried members are not at the cursor, or that tried every member', () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update(testEndpoints('a', 'b', 'c'));
    const retry = (tried: string[]) => pickedId(balancer.picker.pick({ tried: tried.map((id) => `${id}.svc.test:8080`) }));
    expect([retry(['c']), retry(['a', 'b', 'c']), ...picks(balancer, 2), retry(['a', 'b']), ...picks(balancer, 2)]).toEqual(['a', 'b', 'c', 'a', 'c', 'a', 'b']);
  });
});
