import { describe, expect, it } from 'vitest';
import { ambiguousStatusRanges, parseStatusRange, statusRangeSpan } from './status-ranges.ts';

describe('parseStatusRange', () => {
  it.each([
    ['502', { from: 502, to: 502 }],
    ['404', { from: 404, to: 404 }],
    ['5xx', { from: 500, to: 599 }],
    ['4XX', { from: 400, to: 499 }],
    ['500-599', { from: 500, to: 599 }],
    ['502 - 504', { from: 502, to: 504 }],
    ['400-400', { from: 400, to: 400 }],
  ])('reads "%s" as %j', (text, range) => {
    expect(parseStatusRange(text)).toEqual(range);
  });

  it.each([
    ['399', 'within 400-599 (1xx, 2xx and 3xx answers keep their bodies)'],
    ['600', 'within 400-599'],
    ['3xx', 'expected a status (502), a class (5xx) or a range (500-599)'],
    ['6xx', 'expected a status (502)'],
    ['1xx', 'expected a status (502)'],
    ['200-499', 'within 400-599 (1xx, 2xx and 3xx answers keep their bodies)'],
    ['599-500', 'the range ends before it starts'],
    ['50x', 'expected a status (502)'],
    ['5000', 'expected a status (502)'],
    ['', 'expected a status (502)'],
  ])('refuses "%s": %s', (text, reason) => {
    expect(parseStatusRange(text)).toContain(reason);
  });

  it('counts a range’s statuses as its span', () => {
    expect([statusRangeSpan({ from: 502, to: 502 }), statusRangeSpan({ from: 500, to: 599 })]).toEqual([1, 100]);
  });
});

describe('ambiguousStatusRanges', () => {
  const ranges = (entries: Record<string, [number, number]>) => new Map(Object.entries(entries).map(([key, [from, to]]) => [key, { from, to }]));

  it('finds two keys as specific as each other that claim one status', () => {
    expect(ambiguousStatusRanges(ranges({ '5xx': [500, 599], '500-599': [500, 599] }))).toEqual(['5xx', '500-599']);
    expect(ambiguousStatusRanges(ranges({ '500-549': [500, 549], '520-569': [520, 569] }))).toEqual(['500-549', '520-569']);
  });

  it('lets a narrower key sit inside a wider one, and equal spans side by side', () => {
    expect(ambiguousStatusRanges(ranges({ '5xx': [500, 599], '502': [502, 502], '502-504': [502, 504], '4xx': [400, 499] }))).toBeUndefined();
  });
});
