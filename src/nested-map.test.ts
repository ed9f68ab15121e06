import { describe, expect, it, vi } from 'vitest';
import { nestedValue, type NestedMap } from './nested-map.ts';

describe('nestedValue', () => {
  it('makes a value once per key pair, with both keys, and returns the stored one afterwards', () => {
    const map: NestedMap<string, string, { readonly made: string }> = new Map();
    const create = vi.fn((a: string, b: string) => ({ made: `${a}/${b}` }));
    const first = nestedValue(map, 'svc', '10.0.0.1:80', create);
    expect(first).toEqual({ made: 'svc/10.0.0.1:80' });
    expect(nestedValue(map, 'svc', '10.0.0.1:80', create)).toBe(first);
    expect(create).toHaveBeenCalledTimes(1);
  });

  it('keeps values of different outer or inner keys apart', () => {
    const map: NestedMap<string, string, number[]> = new Map();
    const create = () => [];
    nestedValue(map, 'a', 'x', create).push(1);
    nestedValue(map, 'a', 'y', create).push(2);
    nestedValue(map, 'b', 'x', create).push(3);
    expect([...map.entries()].map(([key, inner]) => [key, [...inner.entries()]])).toEqual([
      ['a', [['x', [1]], ['y', [2]]]],
      ['b', [['x', [3]]]],
    ]);
  });

  it('treats a stored falsy value as a hit', () => {
    const map: NestedMap<string, string, number> = new Map();
    const create = vi.fn(() => 0);
    nestedValue(map, 'a', 'b', create);
    nestedValue(map, 'a', 'b', create);
    expect(create).toHaveBeenCalledTimes(1);
  });
});
