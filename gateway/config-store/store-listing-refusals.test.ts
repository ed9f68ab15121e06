import { describe, expect, it } from 'vitest';
import { markRefused } from './store-listing-refusals.ts';
import type { ComposedListing } from './store-status.ts';

const ROOT = '/sb';
const JUDGED = { path: 'no-slash', service: 'echo' };
const composed: ComposedListing = { path: '/etc/sb/gateway.yaml', root: ROOT, listing: { revision: '7', receivedAt: 0, entries: new Map([[`${ROOT}/routes/a`, JSON.stringify(JUDGED)]]) } };
const refused = [{ key: `${ROOT}/routes/a`, kind: 'routes' as const, reason: 'path: must start with /; its last good value stays in force', lastGoodInForce: true as const }];

describe('markRefused', () => {
  it('marks an object whose listed value is the one the reader refused, with why and whether its last good value serves', () => {
    expect(markRefused([{ kind: 'routes', name: 'a', value: { service: 'echo', path: 'no-slash' } }], refused, composed)).toEqual([
      { kind: 'routes', name: 'a', value: { service: 'echo', path: 'no-slash' }, refused: { reason: refused[0]!.reason, lastGoodInForce: true } },
    ]);
  });

  it('leaves unmarked a newer value written since the reader judged the object: its refusal is no verdict on it', () => {
    const fixed = { kind: 'routes' as const, name: 'a', value: { path: '/fixed', service: 'echo' } };
    expect(markRefused([fixed], refused, composed)).toEqual([fixed]);
  });

  it('marks an unreadable entry, which holds no value to compare, when the value judged was not JSON either', () => {
    const unreadable: ComposedListing = { ...composed, listing: { ...composed.listing, entries: new Map([[`${ROOT}/routes/a`, 'not json {']]) } };
    const notJson = [{ ...refused[0]!, reason: 'not JSON (an unexpected character)' }];
    expect(markRefused([{ kind: 'routes', name: 'a', reason: 'not JSON' }], notJson, unreadable, false)).toEqual([
      { kind: 'routes', name: 'a', reason: 'not JSON', refused: { reason: notJson[0]!.reason, lastGoodInForce: true } },
    ]);
  });

  it('leaves unmarked an unreadable entry written over a readable value the reader refused: that refusal is no verdict on it', () => {
    // The reader judged (and refused) JUDGED; the text that is not JSON came since, and it has not composed it yet.
    expect(markRefused([{ kind: 'routes', name: 'a', reason: 'not JSON' }], refused, composed, false)).toEqual([{ kind: 'routes', name: 'a', reason: 'not JSON' }]);
  });

  it('marks nothing before the reader composed a listing', () => {
    const entry = { kind: 'routes' as const, name: 'a', value: JUDGED };
    expect(markRefused([entry], refused, undefined)).toEqual([entry]);
  });
});
