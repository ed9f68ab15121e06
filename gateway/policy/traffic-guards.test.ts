import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import type { BreakerChange } from './breaker-change.ts';
import { breakerStateGauge } from './guard-metrics.ts';
import { TrafficGuards } from './traffic-guards.ts';

const parse = (breaker: string, extra = '') =>
  parseConfig('gateway.yaml', `services: { api: { circuitBreaker: ${breaker} } }\nroutes:\n  - { name: api, path: /api, service: api }\n${extra}`, { readFiles: false });

function trip(guards: TrafficGuards, config: ReturnType<typeof parse>): void {
  const guard = guards.guardFor('api', config.routes[0]);
  for (let call = 0; call < 5; call += 1) {
    const admission = guard.enter(call);
    guard.record(call, 'connect-refused', 0, admission);
    guard.leave(admission, true);
  }
}

describe('TrafficGuards', () => {
  it('keeps an open breaker across a reload that leaves its settings alone, and starts afresh when they change', () => {
    const first = parse('{ requestVolumeThreshold: 5 }');
    const guards = new TrafficGuards(first, 3);
    const changes: BreakerChange[] = [];
    guards.changes$.subscribe((change) => changes.push(change));
    trip(guards, first);
    expect(changes.map((change) => [change.type, change.data.service, change.data.worker])).toEqual([['breaker-opened', 'api', 3]]);

    const same = parse('{ requestVolumeThreshold: 5 }', '  - { path: /other, service: api }');
    guards.apply(same);
    expect(guards.guardFor('api', same.routes[0]).slot!.breaker.state).toBe('open');
    expect(guards.breakers()).toMatchObject([{ service: 'api', route: null, state: 'open' }]);

    const changed = parse('{ requestVolumeThreshold: 6 }');
    guards.apply(changed);
    expect(guards.guardFor('api', changed.routes[0]).slot!.breaker.state).toBe('closed');
  });

  it('gives a route with its own breaker its own state, apart from the service', () => {
    const config = parse('{ requestVolumeThreshold: 5 }', '  - { name: own, path: /own, service: api, circuitBreaker: { requestVolumeThreshold: 50 } }');
    const guards = new TrafficGuards(config);
    trip(guards, config);
    expect(guards.guardFor('api', config.routes[1]).slot!.breaker.state).toBe('closed');
    expect(guards.guardFor('api', config.routes[1]).slot!.route).toBe('own');
  });

  it("keeps an unnamed route's breaker with that route when a route is inserted before it (it moved to the route that took its place)", () => {
    const breaker = '{ requestVolumeThreshold: 5 }';
    const config = parseConfig('gateway.yaml', `routes:\n  - { path: /a, service: api, circuitBreaker: ${breaker} }\n`, { readFiles: false });
    const guards = new TrafficGuards(config);
    trip(guards, config);
    const inserted = parseConfig('gateway.yaml', `routes:\n  - { path: /b, service: api, circuitBreaker: ${breaker} }\n  - { path: /a, service: api, circuitBreaker: ${breaker} }\n`, { readFiles: false });
    guards.apply(inserted);
    expect(guards.guardFor('api', inserted.routes[0]).slot!.breaker.state).toBe('closed');
    expect(guards.guardFor('api', inserted.routes[1]).slot!.breaker.state).toBe('open');
  });

  it('lets go of the breaker, caps and guards of a forgotten service reached through a namespace route, and of it alone', () => {
    const config = parseConfig('gateway.yaml', 'defaults: { circuitBreaker: { requestVolumeThreshold: 5 } }\nroutes:\n  - { namespace: true }\n', { readFiles: false });
    const route = config.routes[0];
    const guards = new TrafficGuards(config);
    const held = guards.guardFor('forget-canary', route);
    for (let call = 0; call < 5; call += 1) {
      const admission = held.enter(call);
      held.record(call, 'connect-refused', 0, admission);
      held.leave(admission, true);
    }
    guards.guardFor('forget-stable', route);
    expect(held.slot!.breaker.state).toBe('open');

    guards.forget('forget-canary');
    expect(guards.breakers().map((breaker) => breaker.service)).toEqual(['forget-stable']);
    expect(guards.serviceLimits().map((limits) => limits.service)).toEqual(['forget-stable']);
    // Listed again later, it is a new service: a guard of its own with a closed breaker.
    const again = guards.guardFor('forget-canary', route);
    expect(again).not.toBe(held);
    expect(again.slot!.breaker.state).toBe('closed');
  });

  it('says nothing of a dropped breaker whose requests finish after it went: no state series, no transition, no event', async () => {
    const config = parseConfig('gateway.yaml', 'defaults: { circuitBreaker: { requestVolumeThreshold: 5 } }\nroutes:\n  - { namespace: true }\n', { readFiles: false });
    const route = config.routes[0];
    const guards = new TrafficGuards(config);
    const changes: BreakerChange[] = [];
    const subscription = guards.changes$.subscribe((change) => changes.push(change));
    const held = guards.guardFor('forget-in-flight', route);
    const admissions = [0, 1, 2, 3, 4].map((call) => held.enter(call));
    guards.forget('forget-in-flight');
    admissions.forEach((admission, call) => {
      held.record(call, 'connect-refused', 0, admission);
      held.leave(admission, true);
    });
    subscription.unsubscribe();
    expect(held.slot!.breaker.state).toBe('open');
    expect(changes).toEqual([]);
    const series = (await breakerStateGauge.get()).values.filter((value) => value.labels.service === 'forget-in-flight');
    expect(series).toEqual([]);
  });
});
