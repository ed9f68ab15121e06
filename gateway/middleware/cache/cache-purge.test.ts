import CachePolicy from 'http-cache-semantics';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../../src/metrics.ts';
import { cacheKey, type CacheKeyParts } from './cache-key.ts';
import { forgetCache, showCache } from './cache-metrics.ts';
import { decodeCachePurgeSelector, purgeLiveCaches, type CachePurgeSelector } from './cache-purge.ts';
import { ResponseCache } from './cache-store.ts';

const POLICY = new CachePolicy({ method: 'GET', url: '/', headers: {} }, { status: 200, headers: { 'cache-control': 'max-age=60' } }, { shared: true });

const key = (changes: Partial<CacheKeyParts>) => cacheKey({ scheme: 'http', host: 'a.test', path: '/products/42', entryPoint: 'web', route: 'shop', consumer: undefined, ...changes });

/** The stored resources, by a short name; `plain` has two variants (Vary: Accept-Encoding). */
const RESOURCES = {
  plain: key({}),
  queried: key({ scheme: 'https', host: 'a.test:8443', path: '/products/42?x=1', entryPoint: 'websecure' }),
  consumer: key({ host: 'b.test', consumer: 'alice' }),
  longer: key({ path: '/products/420' }),
  other: key({ path: '/other', route: 'misc' }),
  // A Host a client may send: a space, a slash and an old-style key's separators in it.
  odd: key({ host: 'c.test/products/42 entry=web', path: '/x' }),
} as const;
type Resource = keyof typeof RESOURCES;

/** A cache holding every resource (both variants of `plain`), shown as the middleware `name`. */
function filledCache(name: string): ResponseCache {
  const cache = new ResponseCache(1_048_576);
  for (const [resource, primary] of Object.entries(RESOURCES)) {
    const vary = resource === 'plain' ? 'Accept-Encoding' : undefined;
    const headers = vary === undefined ? {} : { vary };
    cache.store(primary, { 'accept-encoding': 'gzip' }, { status: 200, headers, body: Buffer.from(`${resource} gzip`), policy: POLICY });
    if (vary !== undefined) cache.store(primary, { 'accept-encoding': 'br' }, { status: 200, headers, body: Buffer.from(`${resource} br`), policy: POLICY });
  }
  showCache(name, cache);
  return cache;
}

/** The resources `cache` still answers, `plain` once per variant left. */
function left(cache: ResponseCache): string[] {
  return Object.entries(RESOURCES).flatMap(([resource, primary]) =>
    ['gzip', 'br'].filter((coding) => cache.find(primary, { 'accept-encoding': coding })?.body.toString() === `${resource} ${coding}`).map((coding) => (resource === 'plain' ? `${resource} ${coding}` : resource)),
  );
}

const ALL = ['plain gzip', 'plain br', 'queried', 'consumer', 'longer', 'other', 'odd'];
const without = (...gone: string[]) => ALL.filter((entry) => !gone.includes(entry));

describe('purgeLiveCaches', () => {
  const shown: [string, ResponseCache][] = [];
  const fill = (name: string) => {
    const cache = filledCache(name);
    shown.push([name, cache]);
    return cache;
  };
  afterEach(() => {
    for (const [name, cache] of shown.splice(0)) forgetCache(name, cache);
  });

  const cases: { name: string; selector: CachePurgeSelector; gone: (Resource | 'plain gzip' | 'plain br')[] }[] = [
    { name: 'an exact path drops every variant of that URI on every host, scheme, entry point and consumer, and no longer path', selector: { path: '/products/42' }, gone: ['plain gzip', 'plain br', 'consumer'] },
    { name: 'an exact path with its query drops that URI alone', selector: { path: '/products/42?x=1' }, gone: ['queried'] },
    { name: 'a host narrows a path to that host, on any port when it names none', selector: { host: 'a.test', prefix: '/products/42' }, gone: ['plain gzip', 'plain br', 'queried', 'longer'] },
    { name: 'a host with a port takes that port alone', selector: { host: 'a.test:8443', prefix: '/' }, gone: ['queried'] },
    { name: 'a prefix drops every URI starting with it, queries included', selector: { prefix: '/products/42' }, gone: ['plain gzip', 'plain br', 'queried', 'consumer', 'longer'] },
    { name: 'all with a host drops everything of that host', selector: { all: true, host: 'b.test' }, gone: ['consumer'] },
    { name: 'all drops everything', selector: { all: true }, gone: ALL as Resource[] },
    { name: 'a Host holding a slash and a space is told apart from a path', selector: { path: '/products/42', host: 'c.test' }, gone: [] },
    { name: 'a Host holding a slash and a space is matched whole', selector: { path: '/x', host: 'c.test/products/42 entry=web' }, gone: ['odd'] },
  ];
  for (const { name, selector, gone } of cases) {
    it(name, () => {
      const cache = fill('purge-test');
      // Named: other test files in this worker may hold caches in force too.
      expect(purgeLiveCaches({ ...selector, middleware: 'purge-test' })).toBe(gone.length);
      expect(left(cache)).toEqual(without(...gone));
      expect(cache.entries).toBe(ALL.length - gone.length);
    });
  }

  it('drops only the named middleware\'s answers when one is named, and counts each middleware\'s drops', async () => {
    const named = fill('purge-test-named');
    const other = fill('purge-test-other');
    expect(purgeLiveCaches({ middleware: 'purge-test-named', path: '/products/42' })).toBe(3);
    expect(left(named)).toEqual(without('plain gzip', 'plain br', 'consumer'));
    expect(left(other)).toEqual(ALL);
    const counts = (await metricsRegistry.getSingleMetric('switchboard_cache_purged_total')!.get()).values;
    expect(counts.find((sample) => sample.labels.middleware === 'purge-test-named')?.value).toBe(3);
    expect(counts.find((sample) => sample.labels.middleware === 'purge-test-other')).toBeUndefined();
    // Without a name, every cache in force.
    expect(purgeLiveCaches({ path: '/products/42' })).toBe(3);
    expect(left(other)).toEqual(without('plain gzip', 'plain br', 'consumer'));
  });

  it('frees the memory of the variants it drops at once', () => {
    const cache = fill('purge-test-bytes');
    const before = cache.bytes;
    purgeLiveCaches({ all: true, middleware: 'purge-test-bytes' });
    expect(before).toBeGreaterThan(0);
    expect(cache.bytes).toBe(0);
  });
});

describe('decodeCachePurgeSelector', () => {
  const refusals: [unknown, string][] = [
    [null, 'must be a JSON object'],
    [[{ path: '/a' }], 'must be a JSON object'],
    [{}, 'say which answers to drop'],
    [{ host: 'a.test' }, 'say which answers to drop'],
    [{ middleware: 'memory' }, 'say which answers to drop'],
    [{ path: '/a', prefix: '/b' }, 'give only one'],
    [{ path: '/a', all: true }, 'give only one'],
    [{ all: false }, '"all" takes only true'],
    [{ all: 'yes' }, '"all" takes only true'],
    [{ path: 'a' }, '"path" must be a path starting with /'],
    [{ prefix: 7 }, '"prefix" must be a path starting with /'],
    [{ path: '/a', host: '' }, '"host" must be a host name'],
    [{ path: '/a', host: 'a.test/x' }, '"host" must be a host name'],
    [{ path: '/a', middleware: 3 }, '"middleware" must be the name'],
    [{ paths: '/a', all: true }, 'unknown field "paths"'],
  ];
  for (const [value, reason] of refusals) {
    it(`refuses ${JSON.stringify(value)}: ${reason}`, () => {
      const decoded = decodeCachePurgeSelector(value);
      expect(typeof decoded).toBe('string');
      expect(decoded).toContain(reason);
    });
  }

  it('takes one selector with its narrowing fields, the host lower-cased', () => {
    expect(decodeCachePurgeSelector({ middleware: 'memory', host: 'A.Test:8080', prefix: '/p' })).toEqual({ middleware: 'memory', host: 'a.test:8080', prefix: '/p' });
    expect(decodeCachePurgeSelector({ all: true })).toEqual({ all: true });
  });
});
