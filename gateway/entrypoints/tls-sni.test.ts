import { describe, expect, it } from 'vitest';
import { SniTable } from './tls-sni.ts';

describe('SniTable', () => {
  const table = new SniTable(
    [
      { names: ['a.test', 'www.a.test'], value: 'a' },
      { names: ['*.b.test', 'b.test'], value: 'b' },
      { names: ['exact.b.test'], value: 'exact-b' },
      { names: ['a.test', '*.c.test'], value: 'second-a' },
    ],
    'default',
  );

  it.each([
    ['a.test', 'a'],
    ['A.TEST.', 'a'],
    ['www.a.test', 'a'],
    ['b.test', 'b'],
    ['x.b.test', 'b'],
    ['exact.b.test', 'exact-b'],
    ['x.y.b.test', 'default'],
    ['c.test', 'default'],
    ['one.c.test', 'second-a'],
    ['unknown.test', 'default'],
    ['test', 'default'],
    ['.b.test', 'default'],
    ['', 'default'],
    [undefined, 'default'],
  ])('serves %s with %s', (name, expected) => {
    expect(table.lookup(name)).toBe(expected);
  });

  it('lets the first certificate that lists a name keep it', () => {
    expect(table.lookup('a.test')).toBe('a');
  });
});
