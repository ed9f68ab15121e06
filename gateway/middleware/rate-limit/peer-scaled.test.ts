import { describe, expect, it } from 'vitest';
import { PeerScaledLimiter } from './peer-scaled.ts';
import { TokenBucketLimiter } from './token-bucket.ts';
import { shareOf } from './limiter.ts';

describe('peer-scaled fallback bucket', () => {
  it('sizes the local bucket by the live number of gateways and resizes when it changes', () => {
    let gateways = 4;
    const shape = { average: 100, periodMs: 1_000, burst: 100 };
    const now = () => 0;
    const limiter = new PeerScaledLimiter((count) => new TokenBucketLimiter({ ...shareOf(shape, 1 / count), maxWaitMs: 0, now }), () => gateways);
    const admitted = () => {
      let allowed = 0;
      for (let i = 0; i < 200; i += 1) if ((limiter.take('k') as { allowed: boolean }).allowed) allowed += 1;
      return allowed;
    };
    expect(admitted()).toBe(25);
    gateways = 2;
    expect(admitted()).toBe(50);
    // Never divides by less than one gateway.
    gateways = 0;
    expect(admitted()).toBe(100);
  });
});
