import { firstValueFrom, toArray } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectCloseToAbandonTheLoad, loadThatNeverSettles } from '../../test/harness/close-while-loading.ts';
import { LOAD_WAIT_ON_CLOSE_MS } from '../close-while-loading.ts';
import { rootLogger } from '../logger.ts';
import { DeferredProvider } from './deferred-provider.ts';
import type { DiscoveryProvider, ProviderState } from './provider.ts';
import { StaticProvider } from './static/index.ts';

const log = rootLogger.child({ component: 'test' });

/** A logger that keeps the message of each warning. */
function warningsLog(): { log: typeof log; warnings: string[] } {
  const warnings: string[] = [];
  return { log: Object.assign(Object.create(log) as typeof log, { warn: (_fields: unknown, message: string) => void warnings.push(message) }), warnings };
}

/** A DeferredProvider over a StaticProvider whose load the test releases by hand. */
function deferred(logger = log) {
  const real = new StaticProvider('zk:test/services');
  real.replace(new Map([['user', [{ service: 'user', name: '10.0.0.1:80', data: null }]]]));
  let loads = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const provider = new DeferredProvider('zk:test/services', async () => {
    loads += 1;
    await gate;
    return real;
  }, logger);
  return { provider, real, release, loads: () => loads };
}

const states = (provider: DiscoveryProvider): Promise<ProviderState[]> =>
  firstValueFrom(provider.status$.pipe(toArray())).then((statuses) => statuses.map((status) => status.state));

describe('DeferredProvider', () => {
  it('has its name at once and loads nothing before start()', () => {
    const { provider, loads } = deferred();
    expect(provider.name).toBe('zk:test/services');
    expect(loads()).toBe(0);
  });

  it('hands the loaded provider\'s snapshots to a subscriber that came before the load, and to one after', async () => {
    const { provider, release } = deferred();
    const early = firstValueFrom(provider.snapshots$);
    provider.start();
    release();
    expect((await early).instances.map((instance) => instance.host)).toEqual(['10.0.0.1']);
    expect((await firstValueFrom(provider.snapshots$)).service).toBe('user');
    await provider.close();
  });

  it('reports connecting once, then the loaded provider\'s transitions, then closed', async () => {
    const { provider, release } = deferred();
    const seen = states(provider);
    provider.start();
    release();
    await firstValueFrom(provider.snapshots$);
    await provider.close();
    expect(await seen).toEqual(['connecting', 'connected', 'closed']);
  });

  it('closed before start: completes both streams without loading', async () => {
    const { provider, loads } = deferred();
    const seen = states(provider);
    const snapshots = firstValueFrom(provider.snapshots$.pipe(toArray()));
    await provider.close();
    expect(await snapshots).toEqual([]);
    expect(await seen).toEqual(['connecting', 'closed']);
    expect(loads()).toBe(0);
  });

  it('closed while loading: closes the loaded provider and never starts it', async () => {
    const { provider, real, release } = deferred();
    const realStates = states(real);
    provider.start();
    const closing = provider.close();
    release();
    await closing;
    expect(await realStates).toEqual(['connecting', 'closed']);
  });

  it('reports a failed load as stale with the reason, and still closes', async () => {
    const provider = new DeferredProvider('etcd:x', () => Promise.reject(new Error('no etcd3 here')), log);
    const seen = firstValueFrom(provider.status$.pipe(toArray()));
    provider.start();
    await new Promise((resolve) => setImmediate(resolve));
    await provider.close();
    const statuses = await seen;
    expect(statuses.map((status) => status.state)).toEqual(['connecting', 'stale', 'closed']);
    expect(statuses[1]!.reason).toContain('no etcd3 here');
  });

  describe('closed while a load hangs', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('resolves close() once LOAD_WAIT_ON_CLOSE_MS has passed, reports closed and warns that it abandoned the load', async () => {
      vi.useFakeTimers();
      const { log: logger, warnings } = warningsLog();
      const provider = new DeferredProvider('etcd:stuck', loadThatNeverSettles, logger);
      const seen = states(provider);
      await expectCloseToAbandonTheLoad(provider);
      expect(await seen).toEqual(['connecting', 'closed']);
      expect(warnings).toEqual([expect.stringContaining('abandoned')]);
    });

    it('closes, never started, the provider a load abandoned by close() yields later', async () => {
      vi.useFakeTimers();
      const { log: logger } = warningsLog();
      const { provider, real, release } = deferred(logger);
      const realStates = states(real);
      provider.start();
      const closing = provider.close();
      await vi.advanceTimersByTimeAsync(LOAD_WAIT_ON_CLOSE_MS);
      await closing;
      release();
      expect(await realStates).toEqual(['connecting', 'closed']);
    });
  });
});
