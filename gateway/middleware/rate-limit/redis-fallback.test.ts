import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RateLimitChange } from '../../admin/event-types.ts';
import type { LimitDecision, Limiter } from './limiter.ts';
import { RedisFallbackLimiter } from './redis-fallback.ts';

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

function fallbackOf(mode: 'local' | 'allow' | 'deny', redis: Limiter, probe: () => Promise<unknown>, closed?: () => boolean) {
  const log = { warn: vi.fn(), info: vi.fn() };
  const changes: RateLimitChange[] = [];
  const counted = vi.fn();
  const local: Limiter = { take: () => decision(true, 1) };
  const limiter = new RedisFallbackLimiter(redis, { name: 'shared', mode, local, burst: 5, probe, log: log as never, report: (change) => changes.push(change), counted, worker: null, probeIntervalMs: 50, ...(closed ? { closed } : {}) });
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

  it('reports no recovery once retired (a reload replaced its middleware): the limiter that replaced it reports Redis\' return', async () => {
    vi.useFakeTimers();
    const { state, redis, probe } = scripted();
    const use = { retired: false };
    const { limiter, changes, log } = fallbackOf('local', redis, probe, () => use.retired);
    state.up = false;
    await limiter.take('k');
    await vi.advanceTimersByTimeAsync(60);
    use.retired = true;
    state.up = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(changes.map((change) => change.type)).toEqual(['rate-limit-fallback']);
    expect(log.info).not.toHaveBeenCalled();
    expect(state.probes).toBe(2);
  });
});
