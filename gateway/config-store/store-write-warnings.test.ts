import { describe, expect, it } from 'vitest';
import { changesWarnings } from './store-write-warnings.ts';
import type { ComposedListing } from './store-status.ts';

const ROOT = '/sb';
const KEY = `${ROOT}/routes/r`;
const FILE = { services: { echo: { instances: ['127.0.0.1:1'] } } };
const REFUSED_ROUTE = { name: 'r', path: '/r', service: 'echo', middlewares: ['nope'] };
const composed = (entries: Record<string, unknown>): ComposedListing => ({
  path: 'gateway.yaml',
  root: ROOT,
  listing: { revision: '7', receivedAt: 0, entries: new Map(Object.entries(entries).map(([key, value]) => [key, JSON.stringify(value)])) },
});
const REASON = 'references middleware "nope" that is declared neither in the file nor in the store';

describe('changesWarnings', () => {
  it.each([
    ['a route in force', { [KEY]: { name: 'r', path: '/r', service: 'echo' } }, [], `${REASON}; its last good value stays in force`],
    ['a route refused whose last good value the reader keeps', { [KEY]: REFUSED_ROUTE }, [{ key: KEY, kind: 'routes' as const, reason: REASON, lastGoodInForce: true as const }], `${REASON}; its last good value stays in force`],
    // As after a write the reader composed before the warnings were asked: it never had a good value.
    ['a route refused with no last good value', { [KEY]: REFUSED_ROUTE }, [{ key: KEY, kind: 'routes' as const, reason: REASON }], REASON],
    ['no route', {}, [], REASON],
  ])('says a refused value keeps the last good one only when there is one: replacing %s', (_case, entries, refused, reason) => {
    const warnings = changesWarnings(composed(entries), FILE, refused, [{ kind: 'routes', name: 'r', value: REFUSED_ROUTE }]);
    expect(warnings.map((warning) => warning.reason)).toEqual([reason]);
  });
});
