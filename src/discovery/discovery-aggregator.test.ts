import { TestScheduler } from 'rxjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import { componentLogger } from '../logger.ts';
import { DeferredProvider } from './deferred-provider.ts';
import { DiscoveryAggregator } from './discovery-aggregator.ts';
import { unconnectedRegistriesIn, type UnconnectedRegistries } from './unconnected-registries.ts';
import type { RawInstance } from './instance-codec.ts';
import type { ServiceConf } from './load-balance-conf.ts';
import { StaticProvider } from './static/index.ts';

function entries(...ports: number[]): RawInstance[] {
  return ports.map((port) => ({ service: 'user', name: `127.0.0.1:${port}`, data: null }));
}

const ports = (conf: ServiceConf) => conf.instances.map((instance) => instance.port);

describe('DiscoveryAggregator', () => {
  const open: DiscoveryAggregator[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((aggregator) => aggregator.close()));
  });

  function aggregate(providers: StaticProvider[], scheduler?: TestScheduler): DiscoveryAggregator {
    const aggregator = new DiscoveryAggregator(providers, { throttleMs: 10, ...(scheduler ? { scheduler } : {}) });
    open.push(aggregator);
    aggregator.start();
    return aggregator;
  }

  it('passes the first change at once and collapses a burst into its newest set', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ cold, expectObservable }) => {
      const provider = new StaticProvider('p');
      const aggregator = aggregate([provider], scheduler);
      // Five updates at frames 0-4, then one at 30: the window of 10 lets through 0, the trailing 4, then 30.
      cold('abcde 25ms f').subscribe((step) => {
        const sets: Record<string, number[]> = { a: [1], b: [1, 2], c: [1, 2, 3], d: [1, 2, 3, 4], e: [1, 2, 3, 4, 5], f: [9] };
        provider.replace(new Map([['user', entries(...sets[step]!)]]));
      });
      expectObservable(aggregator.service('user').conf$, '^ 40ms !').toBe('a 9ms b 19ms c', {
        a: expect.objectContaining({ version: 1, instances: [expect.objectContaining({ port: 1 })] }),
        b: expect.objectContaining({ version: 2, instances: entries(1, 2, 3, 4, 5).map((e) => expect.objectContaining({ id: e.name })) }),
        c: expect.objectContaining({ version: 3, instances: [expect.objectContaining({ port: 9 })] }),
      });
    });
  });

  it('drops a value whose instances equal the current ones', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ cold, expectObservable }) => {
      const first = new StaticProvider('first');
      const second = new StaticProvider('second');
      const aggregator = aggregate([first, second], scheduler);
      cold('a 20ms b').subscribe((step) => {
        if (step === 'a') first.replace(new Map([['user', entries(1)]]));
        // The second provider lists the same address: the union is unchanged, so nothing is emitted.
        else second.replace(new Map([['user', entries(1)]]));
      });
      expectObservable(aggregator.service('user').conf$, '^ 40ms !').toBe('a', {
        a: expect.objectContaining({ version: 1 }),
      });
    });
  });

  it('unions providers and keeps the first-listed provider on an address clash', async () => {
    const zk = new StaticProvider('zk');
    const etcd = new StaticProvider('etcd');
    const aggregator = aggregate([zk, etcd]);
    etcd.replace(new Map([['user', [{ service: 'user', name: 'e', data: '{"host":"127.0.0.1","port":1,"weight":7}' }, ...entries(2)]]]));
    zk.replace(new Map([['user', [{ service: 'user', name: 'z', data: '{"host":"127.0.0.1","port":1,"weight":3}' }]]]));
    const conf = await new Promise<ServiceConf>((resolve) => {
      aggregator.service('user').conf$.subscribe((value) => {
        if (value.instances.length === 2 && value.sources.get('127.0.0.1:1') === 'zk') resolve(value);
      });
    });
    expect(ports(conf)).toEqual([2, 1]);
    expect(conf.instances.find((instance) => instance.port === 1)?.weight).toBe(3);
    expect(conf.sources.get('127.0.0.1:2')).toBe('etcd');
  });

  it('serves, of two entries of one provider at one address, the one whose id sorts first, whatever their order', async () => {
    const provider = new StaticProvider('zk');
    const aggregator = aggregate([provider]);
    provider.replace(new Map([['user', [
      { service: 'user', name: 'b', data: '{"host":"127.0.0.1","port":1,"weight":7}' },
      { service: 'user', name: 'a', data: '{"host":"127.0.0.1","port":1,"weight":3}' },
    ]]]));
    const conf = await new Promise<ServiceConf>((resolve) => aggregator.service('user').conf$.subscribe(resolve));
    expect(conf.instances.map((instance) => [instance.id, instance.weight])).toEqual([['a', 3]]);
  });

  it('replays the current conf to an observer that attaches late and lists known services', async () => {
    const provider = new StaticProvider('p');
    const aggregator = aggregate([provider]);
    provider.replace(new Map([['user', entries(5)], ['order', []]]));
    const late = await new Promise<ServiceConf>((resolve) => {
      const poll = () => {
        if (aggregator.service('user').current()) aggregator.service('user').conf$.subscribe(resolve);
        else setImmediate(poll);
      };
      poll();
    });
    expect(ports(late)).toEqual([5]);
    const names = await new Promise<readonly string[]>((resolve) => aggregator.services$.subscribe(resolve));
    expect(names).toEqual(['order', 'user']);
  });

  it('keeps the latest snapshot of each provider per service and the revision each provider was last seen at', () => {
    const zk = new StaticProvider('zk');
    const etcd = new StaticProvider('etcd');
    const aggregator = aggregate([zk, etcd]);
    zk.replace(new Map([['user', entries(1)]]));
    zk.replace(new Map([['user', entries(1, 2)]]));
    etcd.replace(new Map([['order', entries(3)]]));
    expect([...aggregator.snapshotsOf('user')].map(([provider, snapshot]) => [provider, snapshot.instances.length, snapshot.revision])).toEqual([['zk', 2, '2']]);
    expect(aggregator.snapshotsOf('unknown').size).toBe(0);
    expect([aggregator.revisionOf('zk'), aggregator.revisionOf('etcd'), aggregator.revisionOf('none')]).toEqual(['2', '1', undefined]);
  });

  it('reports every provider status in configuration order', async () => {
    const aggregator = aggregate([new StaticProvider('a'), new StaticProvider('b')]);
    const statuses = await new Promise<readonly string[]>((resolve) =>
      aggregator.statuses$.subscribe((list) => resolve(list.map((status) => `${status.provider}:${status.state}`))),
    );
    expect(statuses).toEqual(['a:connected', 'b:connected']);
  });

  it('names the registries not yet connected while no registry has given a service an instance set, and none once one has', async () => {
    const listed = new StaticProvider('file');
    // A registry whose client is still loading, then connects (as ZooKeeper before its first answer), and one whose client never loads.
    let connect!: (provider: StaticProvider) => void;
    const zk = new DeferredProvider('zk', () => new Promise<StaticProvider>((resolve) => (connect = resolve)), componentLogger('test'));
    const broken = new DeferredProvider('etcd', () => Promise.reject(new Error('no client')), componentLogger('test'));
    const aggregator = new DiscoveryAggregator([zk, broken, listed], { throttleMs: 10 });
    open.push(aggregator);
    // What a worker is sent (`unconnected$`) must answer as the aggregator does.
    const states: UnconnectedRegistries[] = [];
    aggregator.unconnected$.subscribe((state) => states.push(state));
    let names = new Set<string>();
    aggregator.services$.subscribe((list) => (names = new Set(list)));
    const told = (service: string) => unconnectedRegistriesIn(states.at(-1)!, names, service);
    aggregator.start();
    listed.replace(new Map([['user', entries(1)]]));
    await waitFor(() => aggregator.unconnectedRegistriesOf('order').length === 2, { timeoutMs: 5_000, message: 'the etcd client to fail' });
    // Failed before its first listing: not connected either (stale, but never with an instance set).
    expect(aggregator.unconnectedRegistriesOf('order')).toEqual(['zk', 'etcd']);
    // A registry has listed `user`: its instances are what is registered, whatever the others do.
    expect(aggregator.unconnectedRegistriesOf('user')).toEqual([]);
    expect([told('order'), told('user')]).toEqual([['zk', 'etcd'], []]);
    // The registry that listed `user` no longer does: its lack of instances says nothing again.
    listed.replace(new Map());
    expect([aggregator.unconnectedRegistriesOf('user'), told('user')]).toEqual([['zk', 'etcd'], ['zk', 'etcd']]);
    // Listed again, and a service listed for the first time, while no status changes.
    listed.replace(new Map([['user', entries(1)], ['cart', entries(2)]]));
    expect([aggregator.unconnectedRegistriesOf('user'), told('user'), aggregator.unconnectedRegistriesOf('cart'), told('cart')]).toEqual([[], [], [], []]);
    connect(new StaticProvider('zk'));
    await waitFor(() => aggregator.unconnectedRegistriesOf('order').length === 1, { timeoutMs: 5_000, message: 'zk to connect' });
    expect(aggregator.unconnectedRegistriesOf('order')).toEqual(['etcd']);
    expect(states.at(-1)).toEqual({ registries: ['etcd'], unlisted: [] });
    // Only changes were sent: each state differs from the one before.
    expect(states.every((state, index) => index === 0 || JSON.stringify(state) !== JSON.stringify(states[index - 1]))).toBe(true);
  });

  it('tells unconnected$ of a service no registry lists any more until it is forgotten', async () => {
    const file = new StaticProvider('file');
    const zk = new DeferredProvider('zk', () => Promise.reject(new Error('no client')), componentLogger('test'));
    const aggregator = new DiscoveryAggregator([zk, file], { throttleMs: 10, forgetting: { afterMs: 50, retained: new Set() } });
    open.push(aggregator);
    const states: UnconnectedRegistries[] = [];
    aggregator.unconnected$.subscribe((state) => states.push(state));
    aggregator.start();
    file.replace(new Map([['user', entries(1)]]));
    file.replace(new Map());
    expect(states.at(-1)).toEqual({ registries: ['zk'], unlisted: ['user'] });
    await waitFor(() => states.at(-1)!.unlisted.length === 0, { timeoutMs: 5_000, message: 'user to be forgotten' });
    expect(states.at(-1)).toEqual({ registries: ['zk'], unlisted: [] });
  });

  it('tells unconnected$ nothing more once every registry has connected', () => {
    const zk = new StaticProvider('zk');
    const aggregator = new DiscoveryAggregator([zk], { throttleMs: 10 });
    open.push(aggregator);
    const states: UnconnectedRegistries[] = [];
    aggregator.unconnected$.subscribe((state) => states.push(state));
    aggregator.start();
    zk.replace(new Map([['user', entries(1)]]));
    zk.replace(new Map());
    expect(states).toEqual([{ registries: ['zk'], unlisted: [] }, { registries: [], unlisted: [] }]);
  });

  it('completes conf$ for observers on close', async () => {
    const aggregator = aggregate([new StaticProvider('p')]);
    let completed = false;
    aggregator.service('user').conf$.subscribe({ complete: () => (completed = true) });
    await aggregator.close();
    open.length = 0;
    expect(completed).toBe(true);
  });
});
