import { describe, expect, it } from 'vitest';
import { seededRandom } from './balancer-testing.ts';
import { HashRing, type RingAddition } from './hash-ring.ts';

function randomPoints(random: () => number, count: number): Uint32Array {
  // A small range makes equal points between owners likely, so tie order gets exercised too.
  return Uint32Array.from({ length: count }, () => Math.floor(random() * 5_000));
}

/** The ring as sorted [point, slot] pairs, built naively: stable sort by point over owners in order. */
function naive(owners: ReadonlyMap<number, Uint32Array>, order: readonly number[]): Array<[number, number]> {
  const pairs = order.flatMap((slot) => [...owners.get(slot)!].map((point): [number, number] => [point, slot]));
  return pairs.sort((a, b) => a[0] - b[0]);
}

const pairsOf = (ring: HashRing): Array<[number, number]> => [...ring.points].map((point, index) => [point, ring.slots[index]!]);

describe('HashRing', () => {
  it.each([1, 2, 3, 4, 5])('matches a ring built from scratch after random drops and additions (seed %i)', (seed) => {
    const random = seededRandom(seed);
    const owners = new Map<number, Uint32Array>();
    // Merge order decides ties: a point merged earlier comes first.
    let order: number[] = [];
    let ring = HashRing.EMPTY;
    let nextSlot = 0;
    for (let round = 0; round < 20; round += 1) {
      const drop = new Uint8Array(nextSlot + 1);
      const dropped = order.filter(() => random() < 0.2);
      for (const slot of dropped) {
        drop[slot] = 1;
        owners.delete(slot);
      }
      const additions: RingAddition[] = Array.from({ length: Math.floor(random() * 4) }, () => ({ slot: nextSlot++, points: randomPoints(random, 1 + Math.floor(random() * 50)) }));
      for (const { slot, points } of additions) owners.set(slot, points);
      ring = ring.change(dropped.length > 0 ? drop : undefined, additions);
      order = [...order.filter((slot) => !dropped.includes(slot)), ...additions.map((addition) => addition.slot)];
      // Existing points precede new equal ones; among new ones the packed sort orders equal points by slot.
      expect(pairsOf(ring).map(([point]) => point)).toEqual(naive(owners, order).map(([point]) => point));
      expect(new Set(pairsOf(ring).map((pair) => pair.join(':')))).toEqual(new Set(naive(owners, order).map((pair) => pair.join(':'))));
    }
  });

  it.each([
    { hash: 0, index: 0 },
    { hash: 10, index: 0 },
    { hash: 11, index: 1 },
    { hash: 30, index: 2 },
    { hash: 31, index: 0 },
  ])('locates hash $hash at index $index on a ring with points 10, 20, 30', ({ hash, index }) => {
    const ring = HashRing.EMPTY.change(undefined, [{ slot: 0, points: Uint32Array.of(30, 10, 20) }]);
    expect(ring.locate(hash)).toBe(index);
  });

  it('keeps an existing point ahead of a new equal one', () => {
    const ring = HashRing.EMPTY.change(undefined, [{ slot: 1, points: Uint32Array.of(5) }]).change(undefined, [{ slot: 0, points: Uint32Array.of(5) }]);
    expect([...ring.slots]).toEqual([1, 0]);
  });
});
