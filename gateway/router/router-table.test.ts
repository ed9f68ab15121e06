import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { createRouter, normalizeHost, type RouteRequest } from './router.ts';
import { LinearRouteList } from './router-linear.ts';

/** Routes given as JSON objects (valid YAML flow maps), parsed as the gateway parses its file. */
function routesOf(routes: readonly object[]) {
  return parseConfig('test.yaml', `routes:\n${routes.map((route) => `  - ${JSON.stringify(route)}`).join('\n')}\n`).routes;
}

function serviceFor(routes: readonly object[], path: string, extra: Partial<RouteRequest> = {}): string | undefined {
  const router = createRouter(routesOf(routes), { hasService: () => false });
  return router.route({ method: 'GET', host: 'gateway.local', path, headers: {}, ...extra })?.service;
}

describe('Router table precedence', () => {
  it('lets an exact host with a short prefix beat a wildcard host and any host with longer prefixes', () => {
    const routes = [
      { path: '/a/b/c', service: 'any-deep' },
      { host: '*.example.com', path: '/a/b', service: 'wildcard' },
      { host: 'api.example.com', path: '/a', service: 'exact' },
    ];
    expect(serviceFor(routes, '/a/b/c/d', { host: 'api.example.com' })).toBe('exact');
    expect(serviceFor(routes, '/a/b/c/d', { host: 'web.example.com' })).toBe('wildcard');
    expect(serviceFor(routes, '/a/b/c/d', { host: 'other.test' })).toBe('any-deep');
  });

  it('falls through from the exact host to the wildcard and then any host when the exact routes miss the path', () => {
    const routes = [{ host: 'api.example.com', path: '/x', service: 'exact' }, { host: '*.example.com', path: '/y', service: 'wildcard' }, { path: '/z', service: 'any' }];
    expect(serviceFor(routes, '/y/1', { host: 'api.example.com' })).toBe('wildcard');
    expect(serviceFor(routes, '/z/1', { host: 'api.example.com' })).toBe('any');
    expect(serviceFor(routes, '/x/1', { host: 'web.example.com' })).toBeUndefined();
  });

  it('tries wildcard suffixes longest first, matches several labels, and not the bare domain', () => {
    const routes = [{ host: '*.example.com', service: 'short' }, { host: '*.eu.example.com', service: 'long' }];
    expect(serviceFor(routes, '/', { host: 'a.b.eu.example.com' })).toBe('long');
    expect(serviceFor(routes, '/', { host: 'a.b.us.example.com' })).toBe('short');
    expect(serviceFor(routes, '/', { host: 'example.com' })).toBeUndefined();
    expect(serviceFor(routes, '/', { host: 'eu.example.com' })).toBe('short');
  });

  it('falls back to a shorter prefix when the longer one fails its method or header condition', () => {
    const routes = [{ path: '/a', service: 'short' }, { path: '/a/b', methods: ['POST'], service: 'posts' }, { path: '/a/b/c', headers: { 'x-k': '1' }, service: 'keyed' }];
    expect(serviceFor(routes, '/a/b/c/d')).toBe('short');
    expect(serviceFor(routes, '/a/b/c/d', { method: 'POST' })).toBe('posts');
    expect(serviceFor(routes, '/a/b/c/d', { headers: { 'x-k': '1' } })).toBe('keyed');
  });

  it('matches prefixes by whole segments: /api is not a prefix of /apix, /api/v1 not of /api/v10', () => {
    const routes = [{ path: '/api', service: 'api' }, { path: '/api/v1', service: 'v1' }];
    expect(serviceFor(routes, '/apix')).toBeUndefined();
    expect(serviceFor(routes, '/api/v10/x')).toBe('api');
    expect(serviceFor(routes, '/api/v1?x=/y')).toBe('v1');
  });

  it('ranks regex routes among themselves by file order, whatever the depth of their literal prefix', () => {
    const routes = [{ pathRegex: '^/f', service: 'short-literal' }, { pathRegex: '^/files/.*', service: 'long-literal' }];
    expect(serviceFor(routes, '/files/a')).toBe('short-literal');
    expect(serviceFor([...routes].reverse(), '/files/a')).toBe('long-literal');
  });

  it('tests a regex whose literal prefix ends mid-segment against longer segments, as regexes are not segment-bound', () => {
    const routes = [{ pathRegex: '^/api', service: 'regex' }, { path: '/apix', service: 'prefix' }];
    expect(serviceFor(routes, '/apix/y')).toBe('regex');
  });

  it('tests unanchored and alternating regexes on every path, before any prefix', () => {
    const routes = [{ path: '/docs', service: 'docs' }, { pathRegex: '\\.json$', service: 'json' }, { pathRegex: '^/x|^/docs/raw', service: 'alternation' }];
    expect(serviceFor(routes, '/docs/a.json')).toBe('json');
    expect(serviceFor(routes, '/docs/raw/a')).toBe('alternation');
    expect(serviceFor(routes, '/docs/a.txt')).toBe('docs');
  });

  it('falls back from a regex that fails to the prefixes of the same host, then to other hosts', () => {
    const routes = [{ host: 'api.example.com', pathRegex: '^/files/[0-9]+$', service: 'numbered' }, { host: 'api.example.com', path: '/files', service: 'files' }, { pathRegex: '^/files/', service: 'any-regex' }];
    expect(serviceFor(routes, '/files/12', { host: 'api.example.com' })).toBe('numbered');
    expect(serviceFor(routes, '/files/ab', { host: 'api.example.com' })).toBe('files');
    expect(serviceFor(routes, '/files/ab', { host: 'web.example.com' })).toBe('any-regex');
  });
});

/** A seeded PRNG (mulberry32) so the comparison below is reproducible. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ROUTE_HOSTS = [undefined, undefined, 'a.example.com', 'x.a.example.com', '*.example.com', '*.a.example.com'];
const REQUEST_HOSTS = ['a.example.com', 'A.Example.COM:8443', 'x.a.example.com', 'y.x.a.example.com', 'b.example.com', 'example.com', 'other.test', ''];
const SEGMENTS = ['api', 'v1', 'users', 'apix', '7', ''];
const REGEXES = ['^/api', '^/api/v1/.*', '^/users/[0-9]+$', '\\.json$', '^/api/v1?', '^/(api|users)/v1', '^/api\\/v1\\/users'];

describe('Router table against the linear matcher it replaces', () => {
  it('picks the same route for 40,000 random requests over 200 random route sets', () => {
    const random = seeded(11);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const pathOf = (depth: number) => `/${Array.from({ length: depth }, () => pick(SEGMENTS)).join('/')}`;
    let routed = 0;
    const mismatches: string[] = [];
    for (let set = 0; set < 200; set += 1) {
      const routes = Array.from({ length: 1 + Math.floor(random() * 25) }, () => {
        const shape = random();
        return {
          service: `s${Math.floor(random() * 1000)}`,
          ...(pick(ROUTE_HOSTS) !== undefined ? { host: pick(ROUTE_HOSTS.slice(2)) } : {}),
          ...(shape < 0.6 ? { path: pathOf(1 + Math.floor(random() * 3)) } : shape < 0.8 ? { pathRegex: pick(REGEXES) } : shape < 0.9 ? { path: '/' } : {}),
          ...(random() < 0.2 ? { methods: [pick(['GET', 'POST'])] } : {}),
          ...(random() < 0.2 ? { headers: { 'x-k': '1' } } : {}),
        };
      });
      const configs = routesOf(routes);
      const router = createRouter(configs, { hasService: () => false });
      const linear = new LinearRouteList(configs);
      for (let index = 0; index < 200; index += 1) {
        const request: RouteRequest = {
          method: pick(['GET', 'POST']),
          host: pick(REQUEST_HOSTS),
          path: `${pathOf(Math.floor(random() * 5))}${pick(['', '', '?q=1', '.json', '/?x=/api'])}`,
          headers: random() < 0.5 ? { 'x-k': '1' } : {},
        };
        const expected = linear.match(normalizeHost(request.host), request.path, request)?.name;
        const actual = router.route(request)?.name;
        if (actual !== expected) mismatches.push(`${JSON.stringify(request)}: ${actual} instead of ${expected} over ${JSON.stringify(routes)}`);
        if (expected !== undefined) routed += 1;
      }
    }
    expect(mismatches.slice(0, 3)).toEqual([]);
    // The comparison means something only if many requests do match a route.
    expect(routed).toBeGreaterThan(10_000);
  });
});
