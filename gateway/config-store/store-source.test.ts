import { Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LOAD_WAIT_ON_CLOSE_MS } from '../../src/close-while-loading.ts';
import { expectCloseToAbandonTheLoad, loadThatNeverSettles } from '../../test/harness/close-while-loading.ts';
import type { StoreLocation } from './store-layout.ts';
import { createStoreSource, type StoreSource } from './store-source.ts';

const LOCATION: StoreLocation = { kind: 'etcd', url: 'etcd://127.0.0.1:1/switchboard', endpoints: ['127.0.0.1:1'], root: '/switchboard' };

/** A loaded source that counts its starts and closes. */
function countingSource(): StoreSource & { starts: number; closes: number } {
  const source = {
    listings$: new Subject<never>(),
    reason$: new Subject<never>(),
    starts: 0,
    closes: 0,
    start: () => void (source.starts += 1),
    close: async () => void (source.closes += 1),
  };
  return source;
}

describe('createStoreSource: close() while the client still loads', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves once LOAD_WAIT_ON_CLOSE_MS has passed when the load never settles', async () => {
    vi.useFakeTimers();
    await expectCloseToAbandonTheLoad(createStoreSource(LOCATION, { requestTimeoutMs: 1_000 }, loadThatNeverSettles));
  });

  it.each([
    ['within the wait', 1],
    ['after the wait abandoned it', LOAD_WAIT_ON_CLOSE_MS + 1],
  ])('closes, never started, a client whose load ends after close() began: %s', async (_when, loadedAfterMs) => {
    vi.useFakeTimers();
    const loaded = countingSource();
    const source = createStoreSource(LOCATION, { requestTimeoutMs: 1_000 }, () => new Promise((resolve) => setTimeout(resolve, loadedAfterMs, loaded)));
    source.start();
    const closing = source.close();
    await vi.advanceTimersByTimeAsync(LOAD_WAIT_ON_CLOSE_MS + 2);
    await closing;
    expect([loaded.starts, loaded.closes]).toEqual([0, 1]);
  });
});
