import { describe, expect, it } from 'vitest';
import { hundredthsText } from './access-log-line.ts';

describe('hundredthsText', () => {
  it('prints every count of hundredths as JavaScript prints the number it stands for', () => {
    const samples = [0, 1, 5, 9, 10, 11, 50, 99, 100, 101, 105, 110, 199, 1_000, 1_001, 1_010, 1_234_567, 987_654_321_09, 2 ** 40 + 7];
    for (let hundredths = 0; hundredths < 20_000; hundredths += 1) samples.push(hundredths);
    for (const hundredths of samples) expect(hundredthsText(hundredths)).toBe(String(hundredths / 100));
  });

  it('falls back to the plain division for what is not a non-negative safe integer', () => {
    expect(hundredthsText(-5)).toBe('-0.05');
    expect(hundredthsText(Number.NaN)).toBe('NaN');
  });
});
