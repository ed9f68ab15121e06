import { describe, expect, it } from 'vitest';
import { PEAK_EWMA_PENALTY, PeakEwma } from './peak-ewma.ts';

describe('PeakEwma', () => {
  it('jumps to a sample above the estimate at once', () => {
    const ewma = new PeakEwma(10_000, 0);
    ewma.observe(5, 0);
    ewma.observe(80, 1);
    expect(ewma.latencyMs).toBe(80);
  });

  it('blends a lower sample in by how long ago the last one was, over the decay window', () => {
    const ewma = new PeakEwma(1_000, 0);
    ewma.observe(100, 0);
    ewma.observe(0, 1_000);
    expect(ewma.latencyMs).toBeCloseTo(100 * Math.exp(-1), 6);
  });

  it('costs the estimate times in-flight plus one', () => {
    const ewma = new PeakEwma(10_000, 0);
    ewma.observe(20, 0);
    expect(ewma.cost(3, 0)).toBe(80);
  });

  it('is free while idle without history and costs the penalty once a request is out', () => {
    const ewma = new PeakEwma(10_000, 0);
    expect(ewma.cost(0, 0)).toBe(0);
    expect(ewma.cost(1, 0)).toBe(PEAK_EWMA_PENALTY + 1);
  });

  it('decays an idle estimate on read, so an idle member becomes attractive again', () => {
    const ewma = new PeakEwma(1_000, 0);
    ewma.observe(100, 0);
    expect(ewma.cost(0, 3_000)).toBeCloseTo(100 * Math.exp(-3), 6);
  });
});
