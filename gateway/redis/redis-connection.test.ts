import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RedisSettings } from '../config/types.ts';
import { closeSharedRedis, releaseSharedRedisAfter, sharedRedis } from './redis-connection.ts';

const DRAIN_MS = 1_000;

describe('releaseSharedRedisAfter', () => {
  // A server that takes connections and never answers: the connections exist without a Redis.
  let server: Server;
  const sockets: Socket[] = [];
  let before: RedisSettings;
  let after: RedisSettings;

  beforeAll(async () => {
    server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    before = { target: { kind: 'url', url: `redis://127.0.0.1:${port}` }, password: undefined, timeoutMs: 500, keyPrefix: 'before:', gateways: 1 };
    after = { ...before, keyPrefix: 'after:' };
  });
  afterEach(async () => {
    vi.useRealTimers();
    await closeSharedRedis(0);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('closes the previous connection one drain time after the reload that moved redis:, however many reloads keep it since', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const previous = sharedRedis(before);
    releaseSharedRedisAfter(after, DRAIN_MS);
    await vi.advanceTimersByTimeAsync(DRAIN_MS * 0.6);
    // A reload that keeps redis: (say, a route added) within the drain time.
    releaseSharedRedisAfter(after, DRAIN_MS);
    expect(sharedRedis(before)).toBe(previous);
    await vi.advanceTimersByTimeAsync(DRAIN_MS * 0.5);
    expect(sharedRedis(before)).not.toBe(previous);
  });

  it('restarts the wait for a reload that moves redis: again, keeping the settings then in force', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const previous = sharedRedis(before);
    releaseSharedRedisAfter(after, DRAIN_MS);
    await vi.advanceTimersByTimeAsync(DRAIN_MS * 0.6);
    // Moved back: the requests of the configuration on `after` get their drain time, and `before` stays.
    const moved = sharedRedis(after);
    releaseSharedRedisAfter(before, DRAIN_MS);
    await vi.advanceTimersByTimeAsync(DRAIN_MS * 0.5);
    expect(sharedRedis(after)).toBe(moved);
    await vi.advanceTimersByTimeAsync(DRAIN_MS * 0.5);
    expect(sharedRedis(after)).not.toBe(moved);
    expect(sharedRedis(before)).toBe(previous);
  });
});
