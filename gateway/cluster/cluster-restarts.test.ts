import { describe, expect, it } from 'vitest';
import { restartPlan } from './cluster-restarts.ts';

const NO_JITTER = () => 0;

describe('restartPlan', () => {
  it('replaces a worker that crashed after running a while in about 0.1 s', () => {
    expect(restartPlan(0, 60_000, NO_JITTER)).toEqual({ crashes: 1, delayMs: 100 });
    expect(restartPlan(7, 60_000, NO_JITTER)).toEqual({ crashes: 1, delayMs: 100 });
  });

  it('doubles the delay with every quick crash in a row, up to 30 s, so a crash loop never spins', () => {
    let crashes = 0;
    const delays: number[] = [];
    for (let index = 0; index < 12; index += 1) {
      const plan = restartPlan(crashes, 200, NO_JITTER);
      crashes = plan.crashes;
      delays.push(plan.delayMs);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000]);
  });

  it('jitters each delay down by at most half, so workers crashing together do not restart in step', () => {
    expect(restartPlan(3, 0, () => 1).delayMs).toBe(400);
    expect(restartPlan(3, 0, () => 0.5).delayMs).toBe(600);
  });
});
