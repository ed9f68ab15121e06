import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { batchedRandomUUID, formatBatch } from './request-id-uuid.ts';

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

  it('formats every byte of the random batch in its place, with the version and variant bits set', () => {
    const random = randomBytes(16 * 128);
    const text = formatBatch(random);
    expect(text).toHaveLength(36 * 128);
    for (let uuid = 0; uuid < 128; uuid += 1) {
      const bytes = Buffer.from(random.subarray(uuid * 16, uuid * 16 + 16));
      bytes[6] = (bytes[6]! & 0x0f) | 0x40;
      bytes[8] = (bytes[8]! & 0x3f) | 0x80;
      const hex = bytes.toString('hex');
      const expected = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      expect(text.slice(uuid * 36, uuid * 36 + 36)).toBe(expected);
    }
  });
});
