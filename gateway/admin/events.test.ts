import { BehaviorSubject, Subject } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { endpointState } from './admin-testing.ts';
import type { AdminEvent, ConfigChange, EndpointState } from './event-types.ts';
import { AdminEvents, EVENT_BUFFER_SIZE, EVENT_IDS_PER_RUN, firstEventId } from './events.ts';

/** An AdminEvents over hand-driven streams, numbering from `firstId` (`run-start`: its default); `describe` maps a snapshot's service name to prepared endpoint states. */
function harness(statuses: ProviderStatus[] = [], firstId: number | 'run-start' = 1) {
  const health$ = new Subject<HealthSnapshot>();
  const statuses$ = new BehaviorSubject<readonly ProviderStatus[]>(statuses);
  const config$ = new Subject<ConfigChange>();
  const states = new Map<string, EndpointState[]>();
  const events = new AdminEvents({
    health$,
    statuses$,
    config$,
    ...(firstId === 'run-start' ? {} : { firstId }),
    describe: (snapshot) => {
      const described = states.get(snapshot.service);
      if (!described) throw new Error(`no states for ${snapshot.service}`);
      return described;
    },
  });
  const seen: AdminEvent[] = [];
  events.events$.subscribe((event) => seen.push(event));
  const snapshot = (service: string, ...endpoints: EndpointState[]) => {
    states.set(service, endpoints);
    health$.next({ service, endpoints: [], panic: false });
  };
  return { events, seen, snapshot, statuses$, config$, health$ };
}

describe('AdminEvents', () => {
  it('numbers and stamps events from health snapshots, per service, in order', () => {
    const { seen, snapshot } = harness();
    snapshot('a', endpointState(1));
    snapshot('b', endpointState(2));
    snapshot('a', endpointState(1, { weight: 3 }));
    snapshot('a');
    expect(seen.map((event) => [event.id, event.type, 'service' in event.data ? event.data.service : undefined])).toEqual([
      [1, 'instance-added', 'a'],
      [2, 'instance-added', 'b'],
      [3, 'weight-changed', 'a'],
      [4, 'instance-removed', 'a'],
    ]);
    expect(new Date(seen[0]!.time).getTime()).toBeGreaterThan(0);
  });

  it('reports provider statuses first and keeps the latest of each', () => {
    const { events, statuses$ } = harness([{ provider: 'zk', state: 'connecting', since: 1 }]);
    statuses$.next([{ provider: 'zk', state: 'stale', since: 2, reason: 'partition' }]);
    // The first status is derived while the hub is built, before anyone subscribed: it is in the buffer.
    expect(events.since(0).map((event) => [event.type, event.data])).toMatchObject([
      ['provider-status', { provider: 'zk', state: 'connecting', previous: null }],
      ['provider-status', { provider: 'zk', state: 'stale', previous: 'connecting', reason: 'partition' }],
    ]);
    expect(events.providerStatuses()).toEqual([{ provider: 'zk', state: 'stale', since: 2, reason: 'partition' }]);
  });

  it('passes configuration changes through', () => {
    const { seen, config$ } = harness();
    config$.next({ type: 'config-refused', data: { reason: 'gateway.yaml: listn (line 1): unknown field' } });
    expect(seen).toMatchObject([{ id: 1, type: 'config-refused', data: { reason: 'gateway.yaml: listn (line 1): unknown field' } }]);
  });

  it('replays buffered events after a given id, keeping only the newest ones', () => {
    const { events, config$ } = harness();
    for (let index = 0; index < EVENT_BUFFER_SIZE + 5; index += 1) config$.next({ type: 'config-applied', data: { routes: index, services: 0, restartRequired: [] } });
    expect(events.since(EVENT_BUFFER_SIZE + 2).map((event) => event.id)).toEqual([EVENT_BUFFER_SIZE + 3, EVENT_BUFFER_SIZE + 4, EVENT_BUFFER_SIZE + 5]);
    expect(events.since(0)).toHaveLength(EVENT_BUFFER_SIZE);
    expect(events.since(0)[0]!.id).toBe(6);
  });

  it('replays every buffered event to a client whose last id this run never issued (it followed the gateway before a restart)', () => {
    const { events, config$ } = harness();
    for (let index = 0; index < 3; index += 1) config$.next({ type: 'config-applied', data: { routes: index, services: 0, restartRequired: [] } });
    // Ids 1 to 3 issued: 3 is the newest (nothing missed), 4 and above come from an earlier run.
    expect(events.since(3)).toEqual([]);
    expect(events.since(4).map((event) => event.id)).toEqual([1, 2, 3]);
    expect(events.since(347).map((event) => event.id)).toEqual([1, 2, 3]);
  });

  it('says whether it can replay everything after an id: not once events after it left the buffer, nor for an id of an earlier run', () => {
    const { events, config$ } = harness();
    expect([events.canReplay(0), events.canReplay(1)]).toEqual([true, false]);
    for (let index = 0; index < EVENT_BUFFER_SIZE + 5; index += 1) config$.next({ type: 'config-applied', data: { routes: index, services: 0, restartRequired: [] } });
    // Buffered: 6 to EVENT_BUFFER_SIZE + 5.
    expect([4, 5, 6, EVENT_BUFFER_SIZE + 5, EVENT_BUFFER_SIZE + 6].map((id) => events.canReplay(id))).toEqual([false, true, true, true, false]);
    expect(events.canReplay(0)).toBe(false);
  });

  it('numbers two runs started in the same millisecond in ranges of their own: neither takes an id of the other for its own', () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1, 12), toFake: ['Date'] });
    try {
      const [first, second] = [harness([], 'run-start'), harness([], 'run-start')];
      for (const run of [first, second]) for (let index = 0; index < 3; index += 1) run.config$.next({ type: 'config-applied', data: { routes: index, services: 0, restartRequired: [] } });
      const lastOfFirst = first.seen.at(-1)!.id;
      expect(second.seen.map((event) => event.id)).not.toContain(lastOfFirst);
      // Resuming on the other run from the first one's last id: all it holds, and a resync.
      expect([second.events.canReplay(lastOfFirst), second.events.since(lastOfFirst).length]).toEqual([false, 3]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('draws first ids of at least 1 that leave EVENT_IDS_PER_RUN ids below the largest safe integer', () => {
    const ids = Array.from({ length: 1_000 }, () => firstEventId());
    expect(ids.every((id) => Number.isSafeInteger(id) && id >= 1 && Number.isSafeInteger(id + EVENT_IDS_PER_RUN))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  const RUN_FIRST_ID = 7 * EVENT_IDS_PER_RUN + 12_345;
  it.each([
    ['a run numbered below this one, which issued many events', RUN_FIRST_ID - 1],
    ['a gateway that numbered from 1', 4],
    ['a run numbered above this one', RUN_FIRST_ID + 1_000],
  ])('takes an id of %s for one this run never issued: it cannot replay after it, and replays all it holds', (_case, lastId) => {
    const { events, config$ } = harness([], RUN_FIRST_ID);
    for (let index = 0; index < 10; index += 1) config$.next({ type: 'config-applied', data: { routes: index, services: 0, restartRequired: [] } });
    expect(events.canReplay(lastId)).toBe(false);
    expect(events.since(lastId)).toHaveLength(10);
    // 0 stands for before this run's first event: everything, and nothing missed while the first is still buffered.
    expect([events.canReplay(0), events.since(0).length]).toEqual([true, 10]);
  });

  it('survives a snapshot it cannot describe and goes on with the next', () => {
    const { seen, health$, snapshot } = harness();
    health$.next({ service: 'unknown', endpoints: [], panic: false });
    snapshot('a', endpointState(1));
    expect(seen.map((event) => event.type)).toEqual(['instance-added']);
  });

  it('completes its stream and stops deriving on close', () => {
    const { events, config$ } = harness();
    let completed = false;
    events.events$.subscribe({ complete: () => (completed = true) });
    events.close();
    config$.next({ type: 'config-refused', data: { reason: 'x' } });
    expect(completed).toBe(true);
    expect(events.since(0)).toEqual([]);
  });
});
