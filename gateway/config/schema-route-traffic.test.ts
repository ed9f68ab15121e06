import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { expectRefused } from './config-testing.ts';


describe('route subset and canary', () => {
  it('resolves a subset with the default fallback any, and metadata values written as numbers as text', () => {
    const [route] = parseConfig('g.yaml', 'routes:\n  - { path: /a, service: a, subset: { match: { version: 2, zone: a } } }').routes;
    expect(route!.subset).toEqual({ match: { version: '2', zone: 'a' }, fallback: 'any' });
    expect(route!.canary).toBeUndefined();
  });

  it('resolves a canary with its split heaviest first, its lanes and the default fallback', () => {
    const text = [
      'routes:',
      '  - path: /a',
      '    service: a',
      '    canary:',
      '      by: version',
      '      split: { v2: 10, v1: 90 }',
      '      lanes:',
      '        - { header: X-Canary, value: "on", to: v2 }',
      '        - { cookie: canary, to: v3 }',
    ].join('\n');
    expect(parseConfig('g.yaml', text).routes[0]!.canary).toEqual({
      by: 'version',
      split: [
        { value: 'v1', weight: 90 },
        { value: 'v2', weight: 10 },
      ],
      lanes: [
        { header: 'x-canary', cookie: undefined, value: 'on', to: 'v2' },
        { header: undefined, cookie: 'canary', value: undefined, to: 'v3' },
      ],
      fallback: 'any',
    });
  });

  it.each([
    ['routes:\n  - { service: a, subset: { match: {} } }', 'routes.0.subset.match (line 2): expected at least one metadata pair'],
    ['routes:\n  - { service: a, subset: { match: { version: v2 }, fallback: some } }', 'routes.0.subset.fallback (line 2): expected any, none, or metadata pairs'],
    ['routes:\n  - { service: a, subset: { version: v2 } }', 'routes.0.subset.version (line 2): unknown field "version"'],
    ['routes:\n  - { namespace: true, subset: { match: { version: v2 } } }', 'routes.0.subset (line 2): a namespace route cannot select a subset'],
    [
      'routes:\n  - service: a\n    subset: { match: { version: v2 } }\n    canary: { by: version, split: { v1: 1 } }',
      'routes.0.canary (line 4): a route has either subset or canary, not both',
    ],
    ['routes:\n  - { service: a, canary: { by: version, split: { v1: 0, v2: 0 } } }', 'routes.0.canary.split (line 2): expected at least one weight above 0'],
    ['routes:\n  - { service: a, canary: { by: version, split: { v1: 9.5 } } }', 'routes.0.canary.split.v1 (line 2): expected a whole-number weight'],
    ['routes:\n  - { service: a, canary: { by: version, split: { v1: -1 } } }', 'routes.0.canary.split.v1 (line 2)'],
    ['routes:\n  - { service: a, canary: { split: { v1: 1 } } }', 'routes.0.canary.by (line 2)'],
    [
      'routes:\n  - service: a\n    canary:\n      by: version\n      split: { v1: 1 }\n      lanes:\n        - { header: x-canary, cookie: canary, to: v2 }',
      'routes.0.canary.lanes.0.cookie (line 7): a lane names either a header or a cookie',
    ],
    ['routes:\n  - service: a\n    canary:\n      by: version\n      split: { v1: 1 }\n      lanes:\n        - { to: v2 }', 'routes.0.canary.lanes.0.header (line 7): a lane names either a header or a cookie'],
    ['routes:\n  - service: a\n    canary:\n      by: version\n      split: { v1: 1 }\n      lanes:\n        - { header: x-canary }', 'routes.0.canary.lanes.0.to (line 7)'],
  ])('refuses %j with "%s"', (text, expected) => {
    expectRefused(text, expected);
  });
});
