import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyedTimers } from './keyed-timers.ts';

describe('KeyedTimers', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('keeps a running timer on startUnlessRunning, replaces it on restart, and forgets a key once it fired', () => {
    const timers = new KeyedTimers<string>();
    const fired: string[] = [];
    timers.startUnlessRunning('a', 100, () => fired.push('a1'));
    timers.startUnlessRunning('a', 10, () => fired.push('a2'));
    timers.restart('b', 100, () => fired.push('b1'));
    timers.restart('b', 300, () => fired.push('b2'));
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['a1']);
    // 'a' fired, so its key is free again.
    timers.startUnlessRunning('a', 50, () => fired.push('a3'));
    vi.advanceTimersByTime(200);
    expect(fired).toEqual(['a1', 'a3', 'b2']);
  });

  it('cancels one key, or every key at once', () => {
    const timers = new KeyedTimers<number>();
    const fired: number[] = [];
    for (const key of [1, 2, 3]) timers.startUnlessRunning(key, key * 10, () => fired.push(key));
    timers.cancel(2);
    vi.advanceTimersByTime(15);
    timers.clear();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([1]);
  });
});
