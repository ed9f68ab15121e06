import { describe, expect, it } from 'vitest';
import { Base64Stream } from './base64-stream.ts';

/** Decodes `pieces` one after another, as a stream delivers them. */
function decodeAll(pieces: readonly string[]): Buffer {
  const stream = new Base64Stream();
  return Buffer.concat(pieces.map((piece) => stream.decode(piece)));
}

/** `text` cut at `cuts` (offsets, ascending). */
function cut(text: string, cuts: readonly number[]): string[] {
  return [0, ...cuts].map((start, index) => text.slice(start, cuts[index] ?? text.length));
}

describe('Base64Stream', () => {
  const bytes = Buffer.from(Array.from({ length: 23 }, (_, index) => (index * 37 + 11) % 256));
  const text = bytes.toString('base64');

  it('decodes a body cut at any one place, within a 4-character group or not, to the same bytes', () => {
    for (let at = 0; at <= text.length; at += 1) expect(decodeAll(cut(text, [at]))).toEqual(bytes);
  });

  it('decodes a body cut into odd-sized pieces, keeping the characters past the last whole group for the next piece', () => {
    const stream = new Base64Stream();
    expect(stream.decode(text.slice(0, 5))).toEqual(bytes.subarray(0, 3));
    expect(stream.pending).toBe(text.slice(4, 5));
    expect(decodeAll(cut(text, [1, 6, 9, 16, 23]))).toEqual(bytes);
  });

  it('decodes runs each padded on its own (each chunk encoded apart, as Envoy writes them), however they are cut', () => {
    const runs = [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3, 6), bytes.subarray(6)];
    const padded = runs.map((run) => run.toString('base64')).join('');
    expect(padded).toMatch(/=.+=/);
    for (let at = 0; at <= padded.length; at += 1) expect(decodeAll(cut(padded, [at, Math.min(at + 3, padded.length)]))).toEqual(bytes);
  });

  it('decodes a piece of many padded groups in time linear in its length, not in its square (a client picks the body)', () => {
    // 1 MiB of "AA==": 262,144 one-byte runs. Joined run by run it took seconds; in one buffer, tens of ms.
    const text = 'AA=='.repeat(262_144);
    const started = performance.now();
    const decoded = new Base64Stream().decode(text);
    const elapsedMs = performance.now() - started;
    expect(decoded.equals(Buffer.alloc(262_144))).toBe(true);
    expect(elapsedMs).toBeLessThan(1_000);
  });
});
