import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiscoveryAggregator } from './discovery-aggregator.ts';
import type { ForgettingOptions } from './service-forgetting.ts';
import type { RawInstance } from './instance-codec.ts';
import { StaticProvider } from './static/index.ts';

const GRACE_MS = 1_000;

function entries(service: string, ...ports: number[]): RawInstance[] {
  return ports.map((port) => ({ service, name: `127.0.0.1:${port}`, data: null }));
}

describe('DiscoveryAggregator forgetting', () => {
  const open: DiscoveryAggregator[] = [];
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((aggregator) => aggregator.close()));
    vi.useRealTimers();
  });

  function aggregate(providers: StaticProvider[], forgetting: Partial<ForgettingOptions> = {}) {
    const aggregator = new DiscoveryAggregator(providers, { throttleMs: 10, protection: false, forgetting: { afterMs: GRACE_MS, retained: new Set(), ...forgetting } });
    open.push(aggregator);
    const names: (readonly string[])[] = [];
    const forgotten: string[] = [];
    aggregator.services$.subscribe((list) => names.push(list));
    aggregator.forgotten$.subscribe((service) => forgotten.push(service));
    aggregator.start();
    return { aggregator, names, forgotten, latest: () => names.at(-1) };
  }

  it('forgets a service its only source no longer lists once the grace is over, and completes its conf', async () => {
    const provider = new StaticProvider('list');
    provider.replace(new Map([['web', entries('web', 1)], ['canary-7', entries('canary-7', 2)]]));
    const { aggregator, forgotten, latest } = aggregate([provider]);
    const conf = aggregator.service('canary-7');
    let completed = false;
    conf.conf$.subscribe({ complete: () => (completed = true) });
    provider.replace(new Map([['web', entries('web', 1)]]));
    await vi.advanceTimersByTimeAsync(GRACE_MS - 1);
    expect(latest()).toEqual(['canary-7', 'web']);
    expect(conf.current()?.instances).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    expect(latest()).toEqual(['web']);
    expect(forgotten).toEqual(['canary-7']);
    expect(completed).toBe(true);
    expect(aggregator.snapshotsOf('canary-7').size).toBe(0);
    // Listed again later, it is a new service with a new conf.
    provider.replace(new Map([['web', entries('web', 1)], ['canary-7', entries('canary-7', 3)]]));
    await vi.advanceTimersByTimeAsync(20);
    expect(latest()).toEqual(['canary-7', 'web']);
    expect(aggregator.service('canary-7')).not.toBe(conf);
    expect(aggregator.service('canary-7').current()?.instances.map((instance) => instance.port)).toEqual([3]);
  });

  it('keeps a service listed again within the grace, with its conf, and starts the grace over when it goes again', async () => {
    const provider = new StaticProvider('list');
    provider.replace(new Map([['canary', entries('canary', 1)]]));
    const { aggregator, forgotten, latest } = aggregate([provider]);
    const conf = aggregator.service('canary');
    provider.replace(new Map());
    await vi.advanceTimersByTimeAsync(GRACE_MS / 2);
    provider.replace(new Map([['canary', entries('canary', 1)]]));
    await vi.advanceTimersByTimeAsync(GRACE_MS);
    expect(forgotten).toEqual([]);
    provider.replace(new Map());
    await vi.advanceTimersByTimeAsync(GRACE_MS - 20);
    expect(latest()).toEqual(['canary']);
    await vi.advanceTimersByTimeAsync(40);
    expect(forgotten).toEqual(['canary']);
    expect(aggregator.service('canary')).not.toBe(conf);
  });

  it('never forgets a service a source lists with no instances, nor one another source still lists', async () => {
    const first = new StaticProvider('first');
    const second = new StaticProvider('second');
    first.replace(new Map([['empty', entries('empty', 1)], ['shared', entries('shared', 2)]]));
    second.replace(new Map([['shared', entries('shared', 3)]]));
    const { aggregator, forgotten, latest } = aggregate([first, second]);
    first.replace(new Map([['empty', []]]));
    await vi.advanceTimersByTimeAsync(GRACE_MS * 3);
    expect(forgotten).toEqual([]);
    expect(latest()).toEqual(['empty', 'shared']);
    expect(aggregator.service('shared').current()?.instances.map((instance) => instance.port)).toEqual([3]);
    expect(aggregator.service('empty').current()?.instances).toEqual([]);
  });

  it('never forgets a retained service, and starts the grace when the configuration stops naming it', async () => {
    const provider = new StaticProvider('list');
    provider.replace(new Map([['routed', entries('routed', 1)]]));
    const { aggregator, forgotten } = aggregate([provider], { retained: new Set(['routed']) });
    provider.replace(new Map());
    await vi.advanceTimersByTimeAsync(GRACE_MS * 3);
    expect(forgotten).toEqual([]);
    aggregator.configureForgetting({ afterMs: GRACE_MS, retained: new Set() });
    await vi.advanceTimersByTimeAsync(GRACE_MS - 20);
    expect(forgotten).toEqual([]);
    await vi.advanceTimersByTimeAsync(40);
    expect(forgotten).toEqual(['routed']);
  });

  it('keeps a running grace when the configuration keeps afterMs, and starts it over when afterMs changes', async () => {
    const provider = new StaticProvider('list');
    provider.replace(new Map([['a', entries('a', 1)], ['b', entries('b', 2)]]));
    const { aggregator, forgotten } = aggregate([provider]);
    provider.replace(new Map([['b', entries('b', 2)]]));
    await vi.advanceTimersByTimeAsync(GRACE_MS / 2);
    aggregator.configureForgetting({ afterMs: GRACE_MS, retained: new Set() });
    await vi.advanceTimersByTimeAsync(GRACE_MS / 2 + 20);
    expect(forgotten).toEqual(['a']);
    provider.replace(new Map());
    await vi.advanceTimersByTimeAsync(GRACE_MS / 2);
    aggregator.configureForgetting({ afterMs: GRACE_MS * 2, retained: new Set() });
    await vi.advanceTimersByTimeAsync(GRACE_MS * 2 - 20);
    expect(forgotten).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(40);
    expect(forgotten).toEqual(['a', 'b']);
  });

  it('forgets nothing with afterMs false', async () => {
    const provider = new StaticProvider('list');
    provider.replace(new Map([['web', entries('web', 1)]]));
    const { aggregator, forgotten } = aggregate([provider], { afterMs: false });
    provider.replace(new Map());
    await vi.advanceTimersByTimeAsync(GRACE_MS * 3);
    expect(forgotten).toEqual([]);
    expect(aggregator.service('web').current()?.instances).toEqual([]);
  });
});
