import { describe, expect, it } from 'vitest';
import { murmur3 } from './hash-murmur3.ts';

/** Byte-wise MurmurHash3 x86_32 written straight from the reference, to check the two-units-per-block reading. */
function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  let hash = seed >>> 0;
  const blocks = bytes.length >> 2;
  const mix = (value: number) => Math.imul((Math.imul(value, 0xcc9e2d51) << 15) | (Math.imul(value, 0xcc9e2d51) >>> 17), 0x1b873593);
  for (let index = 0; index < blocks; index += 1) {
    const offset = index * 4;
    const block = bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24);
    hash ^= mix(block);
    hash = (hash << 13) | (hash >>> 19);
    hash = (Math.imul(hash, 5) + 0xe6546b64) | 0;
  }
  let tail = 0;
  const rest = bytes.length & 3;
  for (let index = rest - 1; index >= 0; index -= 1) tail = (tail << 8) | bytes[blocks * 4 + index]!;
  if (rest > 0) hash ^= mix(tail);
  hash ^= bytes.length;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

describe('murmur3', () => {
  it.each([
    { text: '', seed: 0, expected: 0 },
    { text: '', seed: 1, expected: 0x514e28b7 },
    { text: 'hello', seed: 0, expected: 0x248bfa47 },
    { text: 'The quick brown fox jumps over the lazy dog', seed: 0, expected: 0x2e4ff723 },
  ])('the reference implementation hashes "$text" with seed $seed to the published value', ({ text, seed, expected }) => {
    expect(referenceMurmur3(new TextEncoder().encode(text), seed)).toBe(expected);
  });

  it.each(['', 'a', 'ab', 'abc', '10.0.0.1:8080-17', 'ünïcødé ☃', '𝄞 surrogate pair'])('hashes "%s" exactly as the reference does its UTF-16LE bytes', (text) => {
    for (const seed of [0, 42]) expect(murmur3(text, seed)).toBe(referenceMurmur3(new Uint8Array(Buffer.from(text, 'utf16le')), seed));
  });
});
