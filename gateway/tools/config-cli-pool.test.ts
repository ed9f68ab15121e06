import { describe, expect, it } from 'vitest';
import { inOrderWithLimit } from './config-cli-pool.ts';

/** A call that settles when the test says so, recording how many run at once. */
function gatedCalls() {
  const gates = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  let inFlight = 0;
  let most = 0;
  const work = (item: number) =>
    new Promise<string>((resolve, reject) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      gates.set(item, {
        resolve: (value) => {
          inFlight -= 1;
          resolve(value);
        },
        reject: (error) => {
          inFlight -= 1;
          reject(error);
        },
      });
    });
  return { gates, work, most: () => most };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('inOrderWithLimit', () => {
  it('keeps at most the limit in flight and reports in the items\' order, whatever order the calls end in', async () => {
    const { gates, work, most } = gatedCalls();
    const reported: string[] = [];
    const done = inOrderWithLimit([0, 1, 2, 3, 4], 2, work, (item, result) => reported.push(`${item}:${result}`));
    await settle();
    expect([...gates.keys()]).toEqual([0, 1]);
    gates.get(1)!.resolve('b');
    await settle();
    expect(reported).toEqual([]);
    gates.get(0)!.resolve('a');
    await settle();
    expect(reported).toEqual(['0:a', '1:b']);
    for (const item of [2, 3, 4]) {
      await settle();
      gates.get(item)!.resolve(String(item));
    }
    await done;
    expect(reported).toEqual(['0:a', '1:b', '2:2', '3:3', '4:4']);
    expect(most()).toBe(2);
  });

  it('starts nothing after a failure, reports every call that succeeded, and throws the failure', async () => {
    const { gates, work } = gatedCalls();
    const reported: number[] = [];
    const done = inOrderWithLimit([0, 1, 2, 3], 2, work, (item) => reported.push(item));
    const failed = expect(done).rejects.toThrow('412');
    await settle();
    gates.get(0)!.reject(new Error('412'));
    await settle();
    gates.get(1)!.resolve('written');
    await failed;
    expect([...gates.keys()]).toEqual([0, 1]);
    expect(reported).toEqual([1]);
  });

  it('resolves at once for no items', async () => {
    await expect(inOrderWithLimit([], 4, () => Promise.resolve(1), () => undefined)).resolves.toBeUndefined();
  });
});
