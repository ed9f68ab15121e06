import { describe, expect, it } from 'vitest';
import { SmoothWeightedSet, type SmoothWeightedEntry } from './smooth-weighted-set.ts';

function entry(name: string, slot: number): SmoothWeightedEntry & { name: string } {
  return { name, current: 0, base: 0, slot, heapIndex: -1, set: undefined, weightClass: undefined };
}

describe('SmoothWeightedSet (nginx smooth weighted round-robin in O(classes + log n))', () => {
  it.each([
    { weights: [5, 1, 1], expected: 'a a b a c a a a a b a c a a' },
    { weights: [4, 3, 2], expected: 'a b c a b a c b a' },
    { weights: [1, 1, 1], expected: 'a b c a b c' },
    { weights: [2, 2, 1, 1], expected: 'a b c d a b' },
  ])('steps $expected for weights $weights', ({ weights, expected }) => {
    const set = new SmoothWeightedSet<ReturnType<typeof entry>>();
    weights.forEach((weight, slot) => set.add(entry('abcd'[slot]!, slot), weight));
    expect(Array.from({ length: expected.split(' ').length }, () => set.step().name).join(' ')).toBe(expected);
  });

  it('brings current weights up to date on flush and goes on with the same sequence', () => {
    const entries = ['a', 'b', 'c'].map(entry);
    const set = new SmoothWeightedSet<ReturnType<typeof entry>>();
    [5, 1, 1].forEach((weight, slot) => set.add(entries[slot]!, weight));
    const first = Array.from({ length: 3 }, () => set.step().name);
    set.flush();
    expect(entries.map((item) => item.current)).toEqual([1, -4, 3]);
    expect([...first, ...Array.from({ length: 4 }, () => set.step().name)].join(' ')).toBe('a a b a c a a');
  });

  it('hands back an entry it removes with its current weight, and takes it back where it left off', () => {
    const [a, b] = ['a', 'b'].map(entry);
    const set = new SmoothWeightedSet<ReturnType<typeof entry>>();
    set.add(a!, 3);
    set.add(b!, 1);
    set.step();
    set.remove(a!);
    expect(a!.current).toBe(-1);
    expect(set.size).toBe(1);
    expect(set.step().name).toBe('b');
    set.add(a!, 3);
    expect(a!.set).toBe(set);
    expect(set.step().name).toBe('a');
  });
});
