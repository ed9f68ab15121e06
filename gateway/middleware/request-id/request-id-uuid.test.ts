import { describe, expect, it } from 'vitest';
import { batchedRandomUUID } from './request-id-uuid.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('batchedRandomUUID', () => {
  it('gives version 4 UUIDs, all different, across several batches', () => {
    const ids = Array.from({ length: 1_000 }, () => batchedRandomUUID());
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('spreads the random hex digits evenly (no fixed or missing digit in the random positions)', () => {
    const counts = new Map<string, number>();
    for (let index = 0; index < 2_000; index += 1) {
      // The first 8 digits are all random.
      for (const digit of batchedRandomUUID().slice(0, 8)) counts.set(digit, (counts.get(digit) ?? 0) + 1);
    }
    // 16,000 digits: 1,000 expected per digit; a stuck nibble or a wrong table would be far off.
    expect(counts.size).toBe(16);
    for (const count of counts.values()) expect(count).toBeGreaterThan(800);
  });
});
