import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FaultSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { seededRandom } from '../../../src/balance/balancer-testing.ts';
import { watchTimersOf } from '../../../test/harness/fake-timers.ts';
import { arrivals, fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { FAULT_ABORT, fault, faultsInjectedTotal, faultsOverflowTotal } from './index.ts';

/** A random source that hands out `values` in order and records how many it gave. */
function scripted(values: readonly number[]) {
  const source = { draws: 0, next: () => values[source.draws++] ?? 0.5 };
  return source;
}

const settings = (overrides: Partial<FaultSettings>): FaultSettings => ({ abort: undefined, delay: undefined, maxActive: undefined, ...overrides });
const abortOf = (status: number, percentage = 100, body?: string, contentType?: string) => ({ status, percentage, body, contentType });

/** The fake proxy, counting the requests that reached it. */
function countingProxy() {
  const proxy = fakeProxy();
  const reached: string[] = [];
  return {
    reached,
    proxy: async (context: GatewayContext) => {
      reached.push(context.upstream.path);
      await proxy(context);
    },
  };
}

describe('fault', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    // The spies wrap the fake clock's functions: put back before the clock is.
    vi.restoreAllMocks();
    vi.useRealTimers();
    await server?.close();
    server = undefined;
  });

  it('aborts exactly the requests whose one draw falls under the percentage, from a seeded source', async () => {
    const inner = countingProxy();
    server = await serveMiddleware([fault(settings({ abort: abortOf(503, 25) }), { random: seededRandom(7) })], inner.proxy);
    const statuses: number[] = [];
    for (let index = 0; index < 120; index += 1) statuses.push((await server.send(`/r${index}`)).status);
    const draws = seededRandom(7);
    const expected = statuses.map(() => (draws() * 100 < 25 ? 503 : 200));
    expect(statuses).toEqual(expected);
    // The seed gives both outcomes, and every request not aborted reached the upstream.
    expect(new Set(statuses)).toEqual(new Set([200, 503]));
    expect(inner.reached.length).toBe(statuses.filter((status) => status === 200).length);
  });

  it.each([
    ['0 never, even with the lowest draw', 0, 0, 200],
    ['100 always, even with the highest draw', 100, 0.999_999_9, 503],
    ['a fraction, 0.5 taking a draw under 0.005', 0.5, 0.004_9, 503],
    ['a fraction, 0.5 leaving a draw of 0.005', 0.5, 0.005, 200],
  ])('reads percentage %s', async (_name, percentage, draw, status) => {
    server = await serveMiddleware([fault(settings({ abort: abortOf(503, percentage) }), { random: () => draw })]);
    expect((await server.send('/')).status).toBe(status);
  });

  it('draws once for the delay, then once for the abort, per request', async () => {
    const source = scripted([0.9, 0.1, 0.1, 0.9]);
    const inner = countingProxy();
    // Delay 50 % (first draw), abort 50 % (second): request 1 is aborted undelayed, request 2 is delayed and passed on.
    server = await serveMiddleware([fault(settings({ delay: { durationMs: 1, percentage: 50 }, abort: abortOf(503, 50) }), { random: source.next })], inner.proxy);
    expect((await server.send('/one')).status).toBe(503);
    expect(source.draws).toBe(2);
    expect((await server.send('/two')).status).toBe(200);
    expect(source.draws).toBe(4);
    expect(inner.reached).toEqual(['/two']);
  });

  it('delays first and aborts once the delay is over, never calling the layers after it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const arrived = arrivals();
    const inner = countingProxy();
    server = await serveMiddleware([arrived.layer, fault(settings({ delay: { durationMs: 500, percentage: 100 }, abort: abortOf(502) }), { name: 'unit-delay-abort' })], inner.proxy);
    const answer = server.send('/slow');
    const context = await arrived.next();
    vi.advanceTimersByTime(499);
    expect(context.response.headersSent).toBe(false);
    vi.advanceTimersByTime(1);
    const answered = await answer;
    expect(answered.status).toBe(502);
    expect(JSON.parse(answered.body.toString())).toMatchObject({ error: FAULT_ABORT, status: 502 });
    expect(context.outcome).toMatchObject({ status: 502, errorClass: FAULT_ABORT, attempts: 0 });
    expect(inner.reached).toEqual([]);
    const samples = (await faultsInjectedTotal.get()).values.filter((sample) => sample.labels.middleware === 'unit-delay-abort');
    expect(samples.map((sample) => [sample.labels.fault, sample.value]).sort()).toEqual([
      ['abort', 1],
      ['delay', 1],
    ]);
  });

  it('ends a delayed request whose client went away: its timer cleared, nothing sent on, recorded 499 cancelled', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const delays = watchTimersOf(60_000);
    const arrived = arrivals();
    const inner = countingProxy();
    server = await serveMiddleware([arrived.layer, fault(settings({ delay: { durationMs: 60_000, percentage: 100 } }))], inner.proxy);
    const client = httpRequest({ host: '127.0.0.1', port: server.port, path: '/gone', agent: false });
    client.on('error', () => {});
    client.end();
    const context = await arrived.next();
    expect(delays.armed()).toHaveLength(1);
    const closed = new Promise<void>((resolve) => context.response.once('close', resolve));
    client.destroy();
    await closed;
    // Cleared, not fired: the delay's timer is gone before the clock moves.
    expect(delays.armed()).toEqual([]);
    vi.advanceTimersByTime(60_000);
    await Promise.resolve();
    expect(inner.reached).toEqual([]);
    expect(context.outcome).toMatchObject({ status: 499, errorClass: 'cancelled' });
    expect(context.response.listenerCount('close')).toBe(0);
  });

  it('passes a delayed request on after its delay, with no close listener left behind', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const arrived = arrivals();
    const inner = countingProxy();
    server = await serveMiddleware([arrived.layer, fault(settings({ delay: { durationMs: 200, percentage: 100 } }))], inner.proxy);
    const answer = server.send('/later');
    const context = await arrived.next();
    const during = context.response.listenerCount('close');
    vi.advanceTimersByTime(200);
    expect(context.response.listenerCount('close')).toBe(during - 1);
    expect((await answer).status).toBe(200);
    expect(inner.reached).toEqual(['/later']);
  });

  it('lets a chosen request through untouched while maxActive faults are under way, and counts it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const delays = watchTimersOf(1_000);
    const arrived = arrivals();
    const inner = countingProxy();
    server = await serveMiddleware([arrived.layer, fault(settings({ delay: { durationMs: 1_000, percentage: 100 }, maxActive: 1 }), { name: 'unit-max-active' })], inner.proxy);
    const first = server.send('/first');
    await arrived.next();
    // The first is held by its delay: the second is not delayed.
    expect((await server.send('/second')).status).toBe(200);
    expect(inner.reached).toEqual(['/second']);
    vi.advanceTimersByTime(1_000);
    expect((await first).status).toBe(200);
    // Its delay over, the next one is delayed again.
    const third = server.send('/third');
    await arrived.next();
    expect(delays.armed()).toHaveLength(1);
    vi.advanceTimersByTime(1_000);
    await third;
    expect(inner.reached).toEqual(['/second', '/first', '/third']);
    const overflow = (await faultsOverflowTotal.get()).values.find((sample) => sample.labels.middleware === 'unit-max-active');
    expect(overflow?.value).toBe(1);
  });

  it('answers an abort with its body and type, HEAD without the body, and recorded as fault-abort', async () => {
    server = await serveMiddleware([fault(settings({ abort: abortOf(503, 100, 'chaos drill', 'text/plain') }))]);
    const answer = await server.send('/x');
    expect([answer.status, answer.body.toString(), answer.headers['content-type'], answer.headers['content-length']]).toEqual([503, 'chaos drill', 'text/plain', '11']);
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 503, errorClass: FAULT_ABORT, bytesOut: 11 });
    const head = await server.send('/x', { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([503, '11', 0]);
  });

  it('answers a gRPC caller with a gRPC status in a Trailers-Only answer', async () => {
    server = await serveMiddleware([fault(settings({ abort: abortOf(503, 100, 'ignored for gRPC') }))]);
    const answer = await server.send('/pkg.Svc/Call', { method: 'POST', headers: { 'content-type': 'application/grpc' } });
    expect([answer.status, answer.headers['content-type'], answer.headers['grpc-status'], answer.body.length]).toEqual([200, 'application/grpc', '14', 0]);
    expect(server.contexts[0]!.outcome).toMatchObject({ errorClass: FAULT_ABORT, grpcStatus: 14 });
  });
});
