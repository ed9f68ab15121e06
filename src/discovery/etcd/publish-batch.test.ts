import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../../test/harness/fake-timers.ts';
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
    // That flush opened a window again: a touch in it waits for the window's end.
    batch.add(['d']);
    vi.advanceTimersByTime(19);
    expect(flushes).toHaveLength(3);
    vi.advanceTimersByTime(1);
    expect(flushes.at(-1)).toEqual(['d']);
  });

  it('does not open a window for an empty touch', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    expect(timersArmedBy(() => batch.add([]))).toBe(0);
    vi.advanceTimersByTime(100);
    expect(flushes).toEqual([]);
    // No window is open, so the next touch is flushed on the next turn.
    batch.add(['a']);
    vi.advanceTimersByTime(0);
    expect(flushes).toEqual([['a']]);
  });

  it('flushes at once when asked and leaves no timer behind', () => {
    const { flushes, flush } = recorder();
    const batch = new PublishBatch(20, flush);
    // Counted around the calls alone: other code in this process may arm timers of its own.
    expect(
      timersArmedBy(() => {
        batch.add(['a']);
        batch.flushNow();
      }),
    ).toBe(0);
    expect(flushes).toEqual([['a']]);
    // No window is open, so the next touch is flushed on the next turn.
    batch.add(['b']);
    vi.advanceTimersByTime(0);
    expect(flushes).toEqual([['a'], ['b']]);
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
