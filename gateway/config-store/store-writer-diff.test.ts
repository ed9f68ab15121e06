import { describe, expect, it } from 'vitest';
import { diffLines, diffObjects, formatChanges } from './store-writer-diff.ts';
import type { ConfigObject } from './store-writer-split.ts';

const route = (name: string, path: string): ConfigObject => ({ kind: 'routes', name, value: { name, path, service: 'user' } });

describe('diffObjects', () => {
  it('finds no change when only the order of keys differs', () => {
    const stored: ConfigObject[] = [{ kind: 'routes', name: 'a', value: { service: 'user', path: '/a', name: 'a' } }];
    expect(diffObjects(stored, [route('a', '/a')])).toEqual([]);
  });

  it('marks what only the file has +, what only the store has -, and a changed object ~ with the changed line', () => {
    const changes = diffObjects([route('a', '/a'), route('gone', '/g')], [route('a', '/a2'), route('new', '/n')]);
    expect(changes.map((change) => `${change.change} ${change.kind}/${change.name}`)).toEqual(['~ routes/a', '+ routes/new', '- routes/gone']);
    expect(changes[0]!.lines).toEqual(['  name: a', '- path: /a', '+ path: /a2', '  service: user']);
    expect(changes[1]!.lines).toContain('+ path: /n');
    expect(formatChanges(changes)).toContain('~ routes/a\n      name: a\n    - path: /a\n    + path: /a2\n');
  });

  it('tells the same name in two kinds apart', () => {
    const changes = diffObjects([{ kind: 'services', name: 'x', value: {} }], [{ kind: 'middlewares', name: 'x', value: {} }]);
    expect(changes.map((change) => change.change)).toEqual(['+', '-']);
  });
});

describe('diffLines', () => {
  it.each([
    [['a', 'b', 'c'], ['a', 'c'], ['  a', '- b', '  c']],
    [['a', 'c'], ['a', 'b', 'c'], ['  a', '+ b', '  c']],
    [[], ['x'], ['+ x']],
    [['x'], [], ['- x']],
    [['a', 'b'], ['b', 'a'], ['- a', '  b', '+ a']],
  ])('diffs %j into %j as %j', (before, after, expected) => {
    expect(diffLines(before, after)).toEqual(expected);
  });
});
