import { describe, expect, it } from 'vitest';
import { compareRevisions, decodePeerRecord, type PeerRecord } from './peer-record.ts';
import { PeerLag } from './peer-view.ts';

const peer = (id: string, revision: string | null, digest?: string): PeerRecord => ({ id, host: 'h', pid: 1, admin: null, version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', revision, appliedAt: null, ...(digest === undefined ? {} : { digest }) });

describe('peer lag', () => {
  it('marks a peer lagging only once it has been behind the newest revision for longer than lagAfter', () => {
    let now = 0;
    const lag = new PeerLag(3_000, () => now);
    const list = new Map([['a', peer('a', '12')], ['b', peer('b', '9')]]);
    let view = lag.view(list, peer('a', null));
    expect(view.newestRevision).toBe('12');
    expect(view.peers.map((p) => [p.id, p.self, p.lagging])).toEqual([['a', true, false], ['b', false, false]]);
    now = 2_999;
    expect(lag.view(list, peer('a', null)).peers[1]!.lagging).toBe(false);
    now = 3_001;
    view = lag.view(list, peer('a', null));
    expect(view.peers[1]).toMatchObject({ lagging: true, behindSince: new Date(0).toISOString() });
    // It catches up: no longer behind, and a later fall-behind starts a new clock.
    view = lag.view(new Map([['a', peer('a', '12')], ['b', peer('b', '12')]]), peer('a', null));
    expect(view.peers[1]).toMatchObject({ lagging: false, behindSince: null });
    now = 10_000;
    expect(lag.view(new Map([['a', peer('a', '13')], ['b', peer('b', '12')]]), peer('a', null)).peers[1]!.lagging).toBe(false);
  });

  it('does not mark a peer lagging that applied the same content as the newest at a lower revision', () => {
    // etcd: b re-listed at the header revision, which counts a's peer entry; a kept its last object change's.
    let now = 0;
    const lag = new PeerLag(1_000, () => now);
    const list = new Map([['a', peer('a', '7', 'same')], ['b', peer('b', '9', 'same')]]);
    lag.view(list, peer('a', null));
    now = 5_000;
    const view = lag.view(list, peer('a', null));
    expect(view.newestRevision).toBe('9');
    expect(view.peers.map((p) => [p.id, p.lagging, p.behindSince])).toEqual([['a', false, null], ['b', false, null]]);
  });

  it.each([
    ['other content', 'old', 'new'],
    ['no digest (a gateway older than the field)', undefined, undefined],
  ])('still marks a peer lagging that is behind with %s', (_case, behindDigest, newestDigest) => {
    let now = 0;
    const lag = new PeerLag(1_000, () => now);
    const list = new Map([['a', peer('a', '7', behindDigest)], ['b', peer('b', '9', newestDigest)]]);
    lag.view(list, peer('b', null));
    now = 1_500;
    expect(lag.view(list, peer('b', null)).peers[0]).toMatchObject({ id: 'a', lagging: true });
  });

  it('counts a peer that applied nothing yet as behind one that did', () => {
    let now = 0;
    const lag = new PeerLag(1_000, () => now);
    lag.view(new Map([['a', peer('a', null)], ['b', peer('b', '1')]]), peer('b', null));
    now = 1_500;
    expect(lag.view(new Map([['a', peer('a', null)], ['b', peer('b', '1')]]), peer('b', null)).peers[0]).toMatchObject({ id: 'a', lagging: true });
  });
});

describe('the self mark', () => {
  it('marks the entry this gateway wrote, and not one another gateway wrote under the same id', () => {
    const lag = new PeerLag(1_000, () => 0);
    const self = peer('gw-1', null);
    // Two gateways given one id (or one default <hostname>-<pid>: containers on the host's network, each pid 1) share one entry.
    const other = { ...peer('gw-1', '3'), startedAt: '2026-01-01T00:05:00.000Z' };
    expect(lag.view(new Map([['gw-1', { ...self, revision: '3' }]]), self).peers.map((entry) => entry.self)).toEqual([true]);
    expect(lag.view(new Map([['gw-1', other]]), self).peers.map((entry) => entry.self)).toEqual([false]);
    expect(lag.view(new Map([['gw-1', { ...self, pid: 2 }]]), self).peers.map((entry) => entry.self)).toEqual([false]);
    expect(lag.view(new Map([['gw-1', { ...self, host: 'h2' }]]), self).peers.map((entry) => entry.self)).toEqual([false]);
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
    expect(decodePeerRecord(JSON.stringify(peer('a', '3', 'd1')))).toMatchObject({ id: 'a', revision: '3', digest: 'd1' });
  });
});
