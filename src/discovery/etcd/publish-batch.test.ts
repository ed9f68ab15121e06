import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PublishBatch } from './publish-batch.ts';

describe('PublishBatch', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const recorder = (): { flushes: string[][]; flush: (services: ReadonlySet<string>) => void } => {
    const flushes: string[][] = [];
    return { flushes, flush: (services) => flushes.push([...services].sort()) };
  };

  it('flushes a lone touch on the next turn of the event loop, without waiting for a window', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    batch.add(['a', 'b']);
    expect(flushes).toEqual([]);
    vi.advanceTimersByTime(0);
    expect(flushes).toEqual([['a', 'b']]);
  });

  it('collects a burst after the first flush into one flush per window', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    batch.add(['a']);
    vi.advanceTimersByTime(0);
    for (let i = 0; i < 500; i += 1) batch.add([i % 2 === 0 ? 'a' : 'b']);
    vi.advanceTimersByTime(19);
    expect(flushes).toEqual([['a']]);
    vi.advanceTimersByTime(1);
    expect(flushes).toEqual([['a'], ['a', 'b']]);
    // The window after that flush closes empty; the next touch is quiet-period again.
    vi.advanceTimersByTime(20);
    batch.add(['c']);
    vi.advanceTimersByTime(0);
    expect(flushes).toEqual([['a'], ['a', 'b'], ['c']]);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('does not open a window for an empty touch', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    batch.add([]);
    vi.advanceTimersByTime(100);
    expect(flushes).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flushes at once when asked and leaves no timer behind', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    batch.add(['a']);
    batch.flushNow();
    expect(flushes).toEqual([['a']]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flushes synchronously with a window of zero', () => {
    const { flushes, flush } = recorder();
    new PublishBatch(0, flush).add(['a']);
    expect(flushes).toEqual([['a']]);
  });

  it('drops pending services on cancel', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    batch.add(['a']);
    batch.cancel();
    vi.advanceTimersByTime(100);
    expect(flushes).toEqual([]);
  });
});
