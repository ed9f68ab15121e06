import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RateLimitChange } from '../../admin/event-types.ts';
import type { LimitDecision, Limiter } from './limiter.ts';
import { QuotaLimiter } from './local-quota.ts';
import { MAX_CHARGED_KEYS, RedisFallbackLimiter } from './redis-fallback.ts';
import { TokenBucketLimiter } from './token-bucket.ts';

const decision = (allowed: boolean, remaining: number): LimitDecision => ({ allowed, refusedBy: allowed ? undefined : 'rate', limit: 5, remaining, resetMs: 0, retryAfterMs: allowed ? 0 : 100, delayMs: 0 });

/** A Redis limiter and probe whose health the test switches. */
function scripted() {
  const state = { up: true, calls: 0, probes: 0 };
  const redis: Limiter = {
    take: async () => {
      state.calls += 1;
      if (!state.up) throw new Error('Command timed out');
      return decision(true, 4);
    },
  };
  const probe = async () => {
    state.probes += 1;
    if (!state.up) throw new Error('Command timed out');
  };
  return { state, redis, probe };
}

function fallbackOf(
  mode: 'local' | 'allow' | 'deny',
  redis: Limiter,
  probe: () => Promise<unknown>,
  closed?: () => boolean,
  more: { name?: string; retired?: () => boolean; changes?: RateLimitChange[]; local?: Limiter; charge?: (key: string, count: number) => Promise<unknown>; sharesStateWith?: RedisFallbackLimiter } = {},
) {
  const log = { warn: vi.fn(), info: vi.fn() };
  const changes: RateLimitChange[] = more.changes ?? [];
  const counted = vi.fn();
  const local: Limiter = more.local ?? { take: () => decision(true, 1) };
  const limiter = new RedisFallbackLimiter(redis, {
    name: more.name ?? 'shared',
    mode,
    local,
    burst: 5,
    probe,
    log: log as never,
    report: (change) => changes.push(change),
    counted,
    worker: null,
    probeIntervalMs: 50,
    ...(closed ? { closed } : {}),
    ...(more.retired ? { retired: more.retired } : {}),
    ...(more.charge ? { charge: more.charge } : {}),
    ...(more.sharesStateWith ? { sharesStateWith: more.sharesStateWith } : {}),
  });
  return { limiter, log, changes, counted };
}

describe('RedisFallbackLimiter', () => {
  afterEach(() => vi.useRealTimers());

  it('switches to the local bucket on the first failure, says so once, stops asking Redis, and returns when the probe answers', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const { limiter, log, changes, counted } = fallbackOf('local', redis, probe);
    expect((await limiter.take('k')).remaining).toBe(4);
    state.up = false;
    const during = await Promise.all([limiter.take('k'), limiter.take('k'), limiter.take('k')]);
    expect(during.map((answer) => answer.remaining)).toEqual([1, 1, 1]);
    const callsWhileDown = state.calls;
    expect((await limiter.take('k')).remaining).toBe(1);
    expect(state.calls).toBe(callsWhileDown); // no request waits for a Redis known to be away
    expect([log.warn.mock.calls.length, changes.map((change) => change.type), counted.mock.calls.length]).toEqual([1, ['rate-limit-fallback'], 4]);
    await vi.advanceTimersByTimeAsync(120);
    expect(state.probes).toBe(2);
    expect(limiter.fallingBack).toBe(true);
    state.up = true;
    await vi.advanceTimersByTimeAsync(60);
    expect(limiter.fallingBack).toBe(false);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-recovered']);
    expect((await limiter.take('k')).remaining).toBe(4);
    expect(log.info).toHaveBeenCalledTimes(1);
  });

  it.each([
    ['allow', true],
    ['deny', false],
  ] as const)('with onRedisError %s lets everything through or refuses everything while Redis is away', async (mode, allowed) => {
    const { state, redis, probe } = scripted();
    state.up = false;
    const { limiter } = fallbackOf(mode, redis, probe);
    const answers = [await limiter.take('a'), await limiter.take('b')];
    expect(answers.map((answer) => answer.allowed)).toEqual([allowed, allowed]);
  });

  it('stops probing once its connection is closed for good (a reload moved Redis and dropped this limiter)', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const connection = { closed: false };
    const { limiter } = fallbackOf('local', redis, probe, () => connection.closed);
    state.up = false;
    await limiter.take('k');
    await vi.advanceTimersByTimeAsync(120);
    expect(state.probes).toBe(2);
    connection.closed = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(state.probes).toBe(3);
  });

  it('ends its outage when a reload moved Redis and closed its connection, with the limit that replaced it counting on the new one', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const changes: RateLimitChange[] = [];
    const connection = { closed: false };
    const use = { retired: false };
    const { limiter: old, log } = fallbackOf('local', redis, probe, () => connection.closed, { name: 'moved-during-outage', retired: () => use.retired, changes });
    state.up = false;
    await old.take('k');
    // The reload moves the limit to another Redis, which answers; the old connection is closed a drain later.
    use.retired = true;
    const moved = scripted();
    const { limiter: successor } = fallbackOf('local', moved.redis, moved.probe, undefined, { name: 'moved-during-outage', changes });
    expect((await successor.take('k')).allowed).toBe(true);
    connection.closed = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-recovered']);
    expect(log.info).toHaveBeenCalledWith(expect.objectContaining({ middleware: 'moved-during-outage' }), expect.stringContaining('replaced the limit\'s redis connection'));
    expect([old.fallingBack, successor.fallingBack]).toEqual([false, false]);
  });

  it('leaves the end of the outage to the limit that replaced it on another Redis when that one falls back too', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const changes: RateLimitChange[] = [];
    const connection = { closed: false };
    const use = { retired: false };
    const { limiter: old } = fallbackOf('local', redis, probe, () => connection.closed, { name: 'moved-to-a-down-one', retired: () => use.retired, changes });
    state.up = false;
    await old.take('k');
    use.retired = true;
    const moved = scripted();
    moved.state.up = false;
    const { limiter: successor } = fallbackOf('local', moved.redis, moved.probe, undefined, { name: 'moved-to-a-down-one', changes });
    await successor.take('k');
    connection.closed = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-fallback']);
    moved.state.up = true;
    await vi.advanceTimersByTimeAsync(100);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-fallback', 'rate-limit-recovered']);
  });

  it('leaves the recovery to the limit of the same name that replaced it when that one falls back too: one recovery per outage', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const changes: RateLimitChange[] = [];
    const use = { retired: false };
    const { limiter: old } = fallbackOf('local', redis, probe, undefined, { name: 'replaced-during-outage', retired: () => use.retired, changes });
    state.up = false;
    await old.take('k');
    use.retired = true;
    const { limiter: successor } = fallbackOf('local', redis, probe, undefined, { name: 'replaced-during-outage', changes });
    await successor.take('k');
    state.up = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-fallback', 'rate-limit-recovered']);
    expect([old.fallingBack, successor.fallingBack]).toEqual([false, false]);
  });

  it('reports no second recovery when the limit that replaced it saw Redis return first', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const changes: RateLimitChange[] = [];
    const use = { retired: false };
    const { limiter: old } = fallbackOf('local', redis, probe, undefined, { name: 'replaced-probes-later', retired: () => use.retired, changes });
    state.up = false;
    await old.take('k');
    // The old limit's first probe (at 50 ms) fails; its next comes at 100 ms, then 150 ms.
    await vi.advanceTimersByTimeAsync(60);
    use.retired = true;
    const { limiter: successor } = fallbackOf('local', redis, probe, undefined, { name: 'replaced-probes-later', changes });
    await successor.take('k');
    await vi.advanceTimersByTimeAsync(41);
    // Redis returns at 101 ms: the successor's probe (110 ms) sees it before the old one's (150 ms).
    state.up = true;
    await vi.advanceTimersByTimeAsync(100);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-fallback', 'rate-limit-recovered']);
    expect([old.fallingBack, successor.fallingBack]).toEqual([false, false]);
  });

  it('reports the recovery itself when retired with no limit of its name falling back (dropped, or replaced by one that never fell back)', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const use = { retired: false };
    const { limiter, changes } = fallbackOf('local', redis, probe, undefined, { name: 'dropped-during-outage', retired: () => use.retired });
    state.up = false;
    await limiter.take('k');
    use.retired = true;
    state.up = true;
    await vi.advanceTimersByTimeAsync(200);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback', 'rate-limit-recovered']);
  });

  it('starts its local bucket from the last level Redis reported for the key, and charges Redis once per key for what it let through when Redis is back', async () => {
    vi.useFakeTimers();
    const { state, probe } = scripted();
    const levels = new Map<string, number>([['drained', 0], ['half', 2]]);
    const redis: Limiter = {
      take: async (key) => {
        if (!state.up) throw new Error('Command timed out');
        return decision(true, levels.get(key) ?? 4);
      },
    };
    const seeded: [string, number][] = [];
    const charged: [string, number][] = [];
    const local: Limiter = { take: (key) => decision(key !== 'drained', 0), seed: (key, level) => seeded.push([key, level]) };
    const { limiter } = fallbackOf('local', redis, probe, undefined, { local, charge: async (key, count) => charged.push([key, count]) });
    await Promise.all([limiter.take('drained'), limiter.take('half')]);
    expect(seeded).toEqual([
      ['drained', 0],
      ['half', 0.4],
    ]);
    state.up = false;
    await Promise.all([limiter.take('drained'), limiter.take('half'), limiter.take('half'), limiter.take('never-seen')]);
    expect(charged).toEqual([]);
    state.up = true;
    await vi.advanceTimersByTimeAsync(60);
    expect(limiter.fallingBack).toBe(false);
    // Sent before the next request's own call: only the requests let through, one call per key, once.
    await limiter.take('half');
    await limiter.take('half');
    expect(charged).toEqual([
      ['half', 2],
      ['never-seen', 1],
    ]);
  });

  it("starts its local quota from the count Redis last reported for the key, a refusal by Redis' quota included, rounding what is left down to the local share", async () => {
    vi.useFakeTimers();
    const { state, probe } = scripted();
    // Redis' daily quota of 10: `over` used it up (refused by it), `most` has 3 left, `fresh` all 10.
    const left = new Map<string, number>([['over', 0], ['most', 3], ['fresh', 10]]);
    const redis: Limiter = {
      take: async (key) => {
        if (!state.up) throw new Error('Command timed out');
        const remaining = left.get(key)!;
        // Its window, as the local one: the UTC day.
        const resetMs = 86_400_000 - (Date.now() % 86_400_000);
        const quota = { limit: 10, remaining, resetMs, windowMs: 86_400_000 };
        if (remaining === 0) return { allowed: false, refusedBy: 'quota', limit: 10, remaining: 0, resetMs, retryAfterMs: resetMs, delayMs: 0, quota };
        return { ...decision(true, 4), quota };
      },
    };
    // The fallback's share: a quota of 5 over a roomy bucket.
    const local = new QuotaLimiter(new TokenBucketLimiter({ average: 100, periodMs: 1_000, burst: 100 }), { limit: 5, per: 'day' });
    const { limiter } = fallbackOf('local', redis, probe, undefined, { local });
    for (const key of left.keys()) await limiter.take(key);
    state.up = false;
    const passed = async (key: string): Promise<number> => {
      let count = 0;
      while ((await limiter.take(key)).allowed) count += 1;
      return count;
    };
    expect(limiter.fallingBack).toBe(false);
    expect([await passed('over'), await passed('most'), await passed('fresh')]).toEqual([0, 1, 5]);
    expect(limiter.fallingBack).toBe(true);
  });

  it('charges Redis as it is back, for its followers too, not at the next request of a key (the shared bucket refills meanwhile, a quota window may turn)', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const charged: [string, string, number][] = [];
    const { limiter } = fallbackOf('local', redis, probe, undefined, { charge: async (key, count) => charged.push(['own', key, count]) });
    const { limiter: consumer } = fallbackOf('local', redis, probe, undefined, { charge: async (key, count) => charged.push(['consumer', key, count]), sharesStateWith: limiter });
    state.up = false;
    await limiter.take('a');
    await limiter.take('a');
    await consumer.take('b');
    expect(consumer.fallingBack).toBe(true);
    state.up = true;
    await vi.advanceTimersByTimeAsync(60);
    expect(limiter.fallingBack).toBe(false);
    // No request since: the charges went out with the return.
    expect(charged).toEqual([
      ['own', 'a', 2],
      ['consumer', 'b', 1],
    ]);
    await limiter.take('a');
    await consumer.take('b');
    expect(charged).toHaveLength(2);
  });

  it('charges Redis for at most MAX_CHARGED_KEYS keys as it is back, those counted first, so its return is not buried under charges', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const charged = new Map<string, number>();
    const { limiter } = fallbackOf('local', redis, probe, undefined, { charge: async (key, count) => charged.set(key, count) });
    state.up = false;
    for (let index = 0; index < MAX_CHARGED_KEYS + 50; index += 1) await limiter.take(`ip-${index}`);
    // A key counted before the cap keeps counting.
    await limiter.take('ip-0');
    state.up = true;
    await vi.advanceTimersByTimeAsync(60);
    expect(charged.size).toBe(MAX_CHARGED_KEYS);
    expect(charged.get('ip-0')).toBe(2);
    expect(charged.has(`ip-${MAX_CHARGED_KEYS - 1}`)).toBe(true);
    expect(charged.has(`ip-${MAX_CHARGED_KEYS}`)).toBe(false);
  });
});
