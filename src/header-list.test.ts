import { describe, expect, it } from 'vitest';
import { headerHasValue } from './header-list.ts';

describe('headerHasValue', () => {
  it.each([
    ['canary', 'canary', true],
    ['canary, canary', 'canary', true],
    ['prod, canary', 'canary', true],
    ['canary,prod', 'canary', true],
    ['prod ,\tcanary\t', 'canary', true],
    ['a, b', 'a, b', true],
    ['canary-2', 'canary', false],
    ['xcanary, prod', 'canary', false],
    ['prod, canaryx', 'canary', false],
    ['Canary', 'canary', false],
    ['prod, ', '', false],
    ['', '', true],
  ])('%j holds %j: %s', (actual, expected, holds) => {
    expect(headerHasValue(actual, expected)).toBe(holds);
  });

  it('looks at every value of an array (set-cookie) and finds nothing in an absent header', () => {
    expect(headerHasValue(['a=1', 'b=2, canary'], 'canary')).toBe(true);
    expect(headerHasValue(['a=1'], 'canary')).toBe(false);
    expect(headerHasValue(undefined, 'canary')).toBe(false);
  });
});
