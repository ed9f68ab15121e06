import { describe, expect, it } from 'vitest';
import { settledYet } from './transport-testing.ts';

describe('settledYet', () => {
  it('tells a settled promise from a pending one without waiting', async () => {
    let resolve!: () => void;
    const pending = new Promise<void>((yes) => (resolve = yes));
    expect(await settledYet(pending)).toBe(false);
    resolve();
    expect(await settledYet(pending)).toBe(true);
    expect(await settledYet(Promise.resolve(undefined))).toBe(true);
    const rejected = Promise.reject(new Error('no'));
    expect(await settledYet(rejected)).toBe(true);
  });
});
