import { describe, expect, it } from 'vitest';
import { gatherDelayMs } from './store-source-zookeeper.ts';

describe('gatherDelayMs', () => {
  it.each([
    { case: 'a first change waits the whole quiet', firstChangeAt: 1_000, now: 1_000, expected: 20 },
    { case: 'a change 100 ms into a burst still waits the whole quiet', firstChangeAt: 1_000, now: 1_100, expected: 20 },
    { case: 'a change 240 ms into a burst waits only until 250 ms', firstChangeAt: 1_000, now: 1_240, expected: 10 },
    { case: 'a change 250 ms or more into a burst lists at once, however the changes keep coming', firstChangeAt: 1_000, now: 1_400, expected: 0 },
  ])('$case', ({ firstChangeAt, now, expected }) => {
    expect(gatherDelayMs(firstChangeAt, now)).toBe(expected);
  });
});
