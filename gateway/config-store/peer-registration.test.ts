import { afterEach, describe, expect, it, vi } from 'vitest';
import { Registration, type RegisteredEntry } from '../../registry-agent/registration.ts';
import type { PeerRecord } from './peer-record.ts';
import { PEER_UPDATE_INTERVAL_MS, PeerRegistration, defaultPeerId } from './peer-registration.ts';
import { parseStoreUrl } from './store-layout.ts';

/** A registration that records what would be written, under which key. */
class RecordingRegistration extends Registration<PeerRecord> {
  readonly writes: { key: string; value: string }[] = [];
  removed = 0;
  constructor(private readonly entry: RegisteredEntry<PeerRecord>) {
    super({ info() {}, warn() {}, debug() {}, error() {} } as never, 1_000);
  }
  protected async ensure(record: PeerRecord): Promise<void> {
    this.writes.push({ key: this.entry.keyOf(record), value: this.entry.encode(record) });
  }
  protected async remove(): Promise<void> {
    this.removed += 1;
  }
  protected async release(): Promise<void> {}
}

afterEach(() => {
  vi.useRealTimers();
});

describe('peer registration', () => {
  it('writes its record under <root>/peers/<id> and coalesces a burst of applied revisions into few writes', async () => {
    vi.useFakeTimers();
    let recording: RecordingRegistration | undefined;
    const peer = new PeerRegistration({
      location: parseStoreUrl('etcd://127.0.0.1:2379/sb'),
      id: 'gw-a',
      ttlMs: 5_000,
      admin: '127.0.0.1:9180',
      now: () => Date.now(),
      registration: (entry) => (recording = new RecordingRegistration(entry)),
    });
    peer.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(recording!.writes).toHaveLength(1);
    expect(recording!.writes[0]!.key).toBe('/sb/peers/gw-a');
    expect(JSON.parse(recording!.writes[0]!.value)).toMatchObject({ id: 'gw-a', admin: '127.0.0.1:9180', pid: process.pid, revision: null });
    for (let revision = 1; revision <= 50; revision += 1) peer.update({ revision: String(revision), appliedAt: revision });
    await vi.advanceTimersByTimeAsync(PEER_UPDATE_INTERVAL_MS * 2);
    const writes = recording!.writes.length;
    // One write at most per interval: the burst costs one or two, never fifty.
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(writes).toBeLessThanOrEqual(3);
    expect(JSON.parse(recording!.writes.at(-1)!.value)).toMatchObject({ revision: '50', appliedAt: new Date(50).toISOString() });
    await peer.close(1_000);
    expect(recording!.removed).toBe(1);
    peer.update({ revision: '51', appliedAt: 51 });
    await vi.advanceTimersByTimeAsync(PEER_UPDATE_INTERVAL_MS * 2);
    expect(recording!.writes.length).toBe(writes);
  });

  it('defaults its id to a store-safe <hostname>-<pid>', () => {
    expect(defaultPeerId()).toMatch(new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]*-${process.pid}$`));
  });
});
