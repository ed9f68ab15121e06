import { describe, expect, it } from 'vitest';
import { compareRevisions, decodePeerRecord, type PeerRecord } from './peer-record.ts';
import { PeerLag } from './peer-view.ts';

const peer = (id: string, revision: string | null): PeerRecord => ({ id, host: 'h', pid: 1, admin: null, version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', revision, appliedAt: null });

describe('peer lag', () => {
  it('marks a peer lagging only once it has been behind the newest revision for longer than lagAfter', () => {
    let now = 0;
    const lag = new PeerLag(3_000, () => now);
    const list = new Map([['a', peer('a', '12')], ['b', peer('b', '9')]]);
    let view = lag.view(list, 'a');
    expect(view.newestRevision).toBe('12');
    expect(view.peers.map((p) => [p.id, p.self, p.lagging])).toEqual([['a', true, false], ['b', false, false]]);
    now = 2_999;
    expect(lag.view(list, 'a').peers[1]!.lagging).toBe(false);
    now = 3_001;
    view = lag.view(list, 'a');
    expect(view.peers[1]).toMatchObject({ lagging: true, behindSince: new Date(0).toISOString() });
    // It catches up: no longer behind, and a later fall-behind starts a new clock.
    view = lag.view(new Map([['a', peer('a', '12')], ['b', peer('b', '12')]]), 'a');
    expect(view.peers[1]).toMatchObject({ lagging: false, behindSince: null });
    now = 10_000;
    expect(lag.view(new Map([['a', peer('a', '13')], ['b', peer('b', '12')]]), 'a').peers[1]!.lagging).toBe(false);
  });

  it('counts a peer that applied nothing yet as behind one that did', () => {
    let now = 0;
    const lag = new PeerLag(1_000, () => now);
    lag.view(new Map([['a', peer('a', null)], ['b', peer('b', '1')]]), 'b');
    now = 1_500;
    expect(lag.view(new Map([['a', peer('a', null)], ['b', peer('b', '1')]]), 'b').peers[0]).toMatchObject({ id: 'a', lagging: true });
  });
});

describe('store revisions', () => {
  it.each([
    ['9', '10', -1],
    ['100', '99', 1],
    ['0x1a', '0x1b', -1],
    ['7', '7', 0],
    [null, '1', -1],
  ] as const)('orders %s against %s as %i', (a, b, sign) => {
    expect(Math.sign(compareRevisions(a, b))).toBe(sign);
  });

  it('skips a value that is not a peer record instead of throwing', () => {
    expect(decodePeerRecord('{oops')).toBeUndefined();
    expect(decodePeerRecord('{"id":"a"}')).toBeUndefined();
    expect(decodePeerRecord(JSON.stringify(peer('a', '3')))).toMatchObject({ id: 'a', revision: '3' });
  });
});
