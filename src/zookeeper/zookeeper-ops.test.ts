import zookeeper, { type Client } from 'node-zookeeper-client';
import { describe, expect, it, vi } from 'vitest';
import { failQueuedRequests } from './guarded-client.ts';
import { ZooKeeperError } from './zookeeper-errors.ts';
import { exists, getChildren, getData, maxZxid, readerFor, zxidToString } from './zookeeper-ops.ts';
import { mkdirp } from './zookeeper-writes.ts';

/** A client whose every call answers with `error` (or throws it synchronously when `sync`). */
function failingClient(error: unknown, sync = false): Client {
  const answer = (...args: unknown[]) => {
    if (sync) throw error;
    const callback = args.at(-1) as (error: unknown) => void;
    callback(error);
  };
  return { getChildren: answer, getData: answer, exists: answer } as unknown as Client;
}

describe('ZooKeeper operation helpers', () => {
  it.each([
    ['NO_NODE', zookeeper.Exception.NO_NODE, 'SB_ZK_NO_NODE', false],
    ['CONNECTION_LOSS', zookeeper.Exception.CONNECTION_LOSS, 'SB_ZK_CONNECTION_LOSS', true],
    ['SESSION_EXPIRED', zookeeper.Exception.SESSION_EXPIRED, 'SB_ZK_SESSION_EXPIRED', true],
    ['NO_AUTH', zookeeper.Exception.NO_AUTH, 'SB_ZK_NO_AUTH', false],
  ])('maps the library result %s to a ZooKeeperError with a stable code', async (reason, code, stableCode, transient) => {
    const cause = Object.assign(new Error(`Exception: ${reason}[${code}]`), { code });
    const error = await getData(failingClient(cause), '/services/web/a').catch((rejected: unknown) => rejected);
    expect(error).toBeInstanceOf(ZooKeeperError);
    expect(error).toMatchObject({ reason, code: stableCode, path: '/services/web/a', transient, cause });
  });

  it('rejects instead of throwing when the library throws synchronously, as it does for a bad path', async () => {
    const error = await getChildren(failingClient(new Error('Node path must start with / character.'), true), 'bad').catch((rejected: unknown) => rejected);
    expect(error).toMatchObject({ reason: 'UNKNOWN', code: 'SB_ZK_UNKNOWN' });
  });

  it('resolves exists() with null for a missing node', async () => {
    const client = { exists: (_path: string, callback: (error: null, stat: undefined) => void) => callback(null, undefined) } as unknown as Client;
    expect(await exists(client, '/missing')).toBeNull();
  });

  it('renders zxids as decimal text and compares them numerically', () => {
    const zxid = Buffer.alloc(8);
    zxid.writeBigUInt64BE(0x1_0000_0002n);
    expect(zxidToString(zxid)).toBe('4294967298');
    expect(zxidToString(undefined)).toBe('0');
    expect(maxZxid('9', '10')).toBe('10');
  });

  it('rejects with OPERATION_TIMEOUT after the session timeout when the library never answers', async () => {
    vi.useFakeTimers();
    try {
      const silent = { getSessionTimeout: () => 2_000, exists: () => undefined, mkdirp: () => undefined } as unknown as Client;
      const read = exists(silent, '/services/web/a').catch((rejected: unknown) => rejected);
      const write = mkdirp(silent, '/services/web').catch((rejected: unknown) => rejected);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(await read).toMatchObject({ reason: 'OPERATION_TIMEOUT', code: 'SB_ZK_OPERATION_TIMEOUT', transient: true });
      expect(await write).toMatchObject({ reason: 'OPERATION_TIMEOUT', path: '/services/web' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('sends a reader\'s reads beyond its in-flight cap as earlier ones answer, and a read that timed out gives its slot back', async () => {
    vi.useFakeTimers();
    try {
      const sent: string[] = [];
      const answers = new Map<string, (error: null, data: Buffer, stat: object) => void>();
      const client = {
        getSessionTimeout: () => 2_000,
        getData: (path: string, callback: (error: null, data: Buffer, stat: object) => void) => {
          sent.push(path);
          answers.set(path, callback);
        },
      } as unknown as Client;
      const reader = readerFor(client, 2);
      const reads = ['/a', '/b', '/c', '/d'].map((path) => reader.getData(path).catch((rejected: unknown) => rejected));
      expect(sent).toEqual(['/a', '/b']);
      answers.get('/a')!(null, Buffer.from('a'), {});
      expect(await reads[0]).toMatchObject({ data: Buffer.from('a') });
      expect(sent).toEqual(['/a', '/b', '/c']);
      // /b and /c never answer: their timeouts (which count the wait for a slot) free the slots for /d.
      await vi.advanceTimersByTimeAsync(2_000);
      expect(await reads[1]).toMatchObject({ reason: 'OPERATION_TIMEOUT' });
      expect(sent).toContain('/d');
    } finally {
      vi.useRealTimers();
    }
  });

  it('fails every request queued on a retired client with an error whose getCode() the library can call', () => {
    const seen: number[] = [];
    // The library's own per-request callbacks (exists, mkdirp) call getCode() on the error they get.
    const libraryCallback = (error: Error): void => {
      seen.push((error as Error & { getCode(): number }).getCode());
    };
    const queue = [{ callback: libraryCallback }, { callback: libraryCallback }];
    failQueuedRequests({ cleanupPendingQueue: () => undefined, packetQueue: { queue } });
    expect(seen).toEqual([zookeeper.Exception.CONNECTION_LOSS, zookeeper.Exception.CONNECTION_LOSS]);
    expect(queue).toHaveLength(0);
  });
});
