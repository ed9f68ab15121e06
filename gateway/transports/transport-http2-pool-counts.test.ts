import { createServer as createHttp2Server, type ClientHttp2Session, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PooledSession } from './transport-http2-session-open.ts';
import { Http2SessionPool } from './transport-http2-sessions.ts';
import { listenOnLoopback, until } from './transport-http2-testing.ts';

/** A small seeded generator (mulberry32), so that a failing sequence can be run again. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** One reservation the test made and what became of it. */
interface Held {
  readonly reservation: Promise<ClientHttp2Session>;
  state: 'pending' | 'resolved' | 'rejected' | 'withdrawn' | 'released';
  session?: ClientHttp2Session;
}

describe('Http2SessionPool: its counts across random sequences of reservations, releases, withdrawals and the instance changing its mind', () => {
  let server: Http2Server;
  let port: number;
  const serverSessions: ServerHttp2Session[] = [];

  beforeAll(async () => {
    server = createHttp2Server({ settings: { maxConcurrentStreams: 2 } }, (_request, response) => response.end());
    server.on('session', (session) => {
      session.on('error', () => undefined);
      serverSessions.push(session);
    });
    port = await listenOnLoopback(server);
  });
  afterAll(async () => {
    for (const session of serverSessions) session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each([1, 2, 3, 4, 5, 6])('gives every stream back and leaves nobody waiting once each reservation is released or withdrawn (seed %i)', async (seed) => {
    const next = random(seed);
    const maxSessions = 1 + Math.floor(next() * 3);
    const pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 2_000, tls: undefined }, { maxSessions, idleMs: 60_000, maxPending: 1_000 });
    const entries = (pool as unknown as { entries: PooledSession[] }).entries;
    const made: Held[] = [];
    const track = (reservation: Promise<ClientHttp2Session>) => {
      const held: Held = { reservation, state: 'pending' };
      reservation.then(
        (session) => {
          // A withdrawn reservation must never settle: it holds nothing.
          expect(held.state, 'a withdrawn reservation settled').toBe('pending');
          held.state = 'resolved';
          held.session = session;
        },
        () => {
          expect(held.state, 'a withdrawn reservation settled').toBe('pending');
          held.state = 'rejected';
        },
      );
      made.push(held);
    };
    const pickOne = (state: Held['state']) => {
      const candidates = made.filter((held) => held.state === state);
      return candidates[Math.floor(next() * candidates.length)];
    };
    try {
      for (let step = 0; step < 150; step += 1) {
        const roll = next();
        if (roll < 0.45) {
          // Often several in one tick, before a new session's SETTINGS can have come.
          const burst = 1 + Math.floor(next() * 4);
          for (let index = 0; index < burst; index += 1) track(pool.reserve());
        } else if (roll < 0.7) {
          const held = pickOne('resolved');
          if (held !== undefined) {
            held.state = 'released';
            pool.release(held.session!);
          }
        } else if (roll < 0.82) {
          const held = pickOne('pending');
          if (held !== undefined && pool.withdraw(held.reservation)) held.state = 'withdrawn';
        } else if (roll < 0.92) {
          // The instance changes its limit on a live session, lowered (0 included) or raised.
          const live = serverSessions.filter((session) => !session.closed && !session.destroyed);
          const session = live[Math.floor(next() * live.length)];
          session?.settings({ maxConcurrentStreams: Math.floor(next() * 4) });
        } else {
          // The instance goes away gracefully (GOAWAY) from a session.
          const live = serverSessions.filter((session) => !session.closed && !session.destroyed);
          live[Math.floor(next() * live.length)]?.close();
        }
        // Let sessions connect and SETTINGS come now and then, so that every path is taken.
        if (next() < 0.3) await new Promise((resolve) => setTimeout(resolve, next() * 5));
      }
      // Give everything back: each reservation resolved is released once, each still waiting withdrawn, until none is left.
      const settled = await until(() => {
        for (const held of made) {
          if (held.state === 'resolved') {
            held.state = 'released';
            pool.release(held.session!);
          } else if (held.state === 'pending' && pool.withdraw(held.reservation)) held.state = 'withdrawn';
        }
        return made.every((held) => held.state !== 'pending' && held.state !== 'resolved');
      }, 10_000);
      expect(settled, `${made.filter((held) => held.state === 'pending').length} reservations still pending`).toBe(true);
      expect(pool.waiting).toBe(0);
      const counts = entries.map((entry) => entry.active);
      expect(counts, 'streams still counted on the sessions').toEqual(counts.map(() => 0));
      // The pool still serves: a reservation now finds a stream, within the cap.
      const live = await pool.reserve();
      pool.release(live);
      expect(pool.size).toBeLessThanOrEqual(maxSessions);
    } finally {
      await pool.close(0);
    }
  }, 20_000);
});
