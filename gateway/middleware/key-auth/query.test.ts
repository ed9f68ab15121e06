import { describe, expect, it } from 'vitest';
import { queryParam, withoutQueryParam } from './query.ts';

describe('query parameters', () => {
  it.each([
    ['/a?key=s&b=1', '/a?b=1'],
    ['/a?b=1&key=s', '/a?b=1'],
    ['/a?key=s', '/a'],
    ['/a?k%65y=s&b=%20', '/a?b=%20'],
    ['/a?key=1&key=2&keys=3', '/a?keys=3'],
    ['/a', '/a'],
  ])('removes every key= from %s', (target, expected) => {
    expect(withoutQueryParam(target, 'key')).toBe(expected);
  });

  it.each([
    ['/a?key=s&b=1&key=t', '/a?key=s&b=1'],
    ['/a?key=t&k%65y=%73&key', '/a?k%65y=%73'],
    ['/a?key=+s&key=%20s&key=s', '/a?key=s'],
  ])('removes from %s every key= but those whose value is s', (target, expected) => {
    expect(withoutQueryParam(target, 'key', 's')).toBe(expected);
  });

  it('reads the first value decoded, and nothing from a target without a query', () => {
    expect([queryParam('/a?x=1&key=a%2Bb&key=2', 'key'), queryParam('/a', 'key'), queryParam('/a?keys=1', 'key')]).toEqual(['a+b', undefined, undefined]);
  });
});
