import { afterEach, describe, expect, it, vi } from 'vitest';
import { ENTRY_REPAIR_BACKOFF, ENTRY_REPAIR_STREAK_MS, EntryRepair } from './registration-entry-repair.ts';

function repairOf() {
  const log = { warn: vi.fn() };
  const repair = vi.fn();
  return { log, repair, entryRepair: new EntryRepair(log as never, repair, Date.now) };
}

describe('EntryRepair', () => {
  afterEach(() => vi.useRealTimers());

  it('repairs a value readers cannot take at once (never synchronously), and leaves one they can', async () => {
    vi.useFakeTimers();
    const { log, repair, entryRepair } = repairOf();
    entryRepair.found('/services/a/1', '{"weight":0}', undefined);
    expect(log.warn).not.toHaveBeenCalled();
    entryRepair.found('/services/a/1', '{"id":', 'a/1: data is not JSON');
    expect(repair).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(0);
    expect(repair).toHaveBeenCalledTimes(1);
    expect(log.warn).toHaveBeenCalledWith(expect.objectContaining({ key: '/services/a/1', found: '{"id":', problem: 'a/1: data is not JSON', delayMs: 0 }), expect.stringContaining('cannot read'));
  });

  it('backs off while the entry is made unreadable again and again, calls it a fight from the third time, and starts over after a quiet minute', async () => {
    vi.useFakeTimers();
    const { log, repair, entryRepair } = repairOf();
    const delays: number[] = [];
    for (let round = 0; round < 6; round += 1) {
      entryRepair.found('k', 'x', 'bad');
      // Findings while a repair waits are that repair's.
      entryRepair.found('k', 'y', 'bad');
      delays.push(log.warn.mock.calls.at(-1)![0].delayMs);
      await vi.advanceTimersByTimeAsync(ENTRY_REPAIR_BACKOFF.maxMs);
    }
    expect(repair).toHaveBeenCalledTimes(6);
    expect(log.warn).toHaveBeenCalledTimes(6);
    expect(delays[0]).toBe(0);
    // Full jitter of half: each delay between half its nominal value and the value, capped.
    for (const [index, delayMs] of delays.slice(1).entries()) {
      const nominal = Math.min(ENTRY_REPAIR_BACKOFF.maxMs, ENTRY_REPAIR_BACKOFF.initialMs * 2 ** index);
      expect(delayMs).toBeGreaterThanOrEqual(nominal / 2);
      expect(delayMs).toBeLessThanOrEqual(nominal);
    }
    expect(log.warn.mock.calls.map((call) => (call[1] as string).includes('another agent or tool'))).toEqual([false, false, true, true, true, true]);
    await vi.advanceTimersByTimeAsync(ENTRY_REPAIR_STREAK_MS);
    entryRepair.found('k', 'x', 'bad');
    expect(log.warn.mock.calls.at(-1)![0]).toMatchObject({ repairs: 1, delayMs: 0 });
  });

  it('drops a repair that waits when cancelled', async () => {
    vi.useFakeTimers();
    const { repair, entryRepair } = repairOf();
    entryRepair.found('k', 'x', 'bad');
    entryRepair.cancel();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(repair).not.toHaveBeenCalled();
  });
});
