import { describe, expect, it } from 'vitest';
import type { MiddlewareConfig } from '../config/types.ts';
import { perWorkerMiddleware } from './cluster-rate-limit.ts';

const LIMIT: MiddlewareConfig = { kind: 'rateLimit', settings: { average: 100, periodMs: 1_000, burst: 50, key: { from: 'client-ip' } } };

describe('perWorkerMiddleware', () => {
  it('gives each of N workers a 1/N share of the rate and the burst, so the sum is what the file says', () => {
    expect(perWorkerMiddleware(LIMIT, 4)).toEqual({ kind: 'rateLimit', settings: { average: 25, periodMs: 1_000, burst: 12, key: { from: 'client-ip' } } });
  });

  it('keeps a burst of at least one token, and leaves one worker and other middleware unchanged', () => {
    const tiny: MiddlewareConfig = { kind: 'rateLimit', settings: { average: 1, periodMs: 1_000, burst: 1, key: { from: 'client-ip' } } };
    expect(perWorkerMiddleware(tiny, 8)).toMatchObject({ settings: { average: 0.125, burst: 1 } });
    expect(perWorkerMiddleware(LIMIT, 1)).toBe(LIMIT);
    const hsts = { kind: 'hsts', settings: { maxAgeSeconds: 1, includeSubdomains: false, preload: false } } as unknown as MiddlewareConfig;
    expect(perWorkerMiddleware(hsts, 4)).toBe(hsts);
  });
});
