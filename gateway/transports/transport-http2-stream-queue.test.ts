import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamFailure } from '../../src/health/upstream-outcome.ts';
import type { AttemptTimeouts } from './transport.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { Http2SessionPool } from './transport-http2-sessions.ts';
import { Http2StreamQueue } from './transport-http2-stream-queue.ts';
import { startAttemptGateway, startHoldingBackend, until, type AttemptGateway, type HoldingBackend } from './transport-http2-testing.ts';

describe('Http2SessionPool: a request that finds maxSessions full sessions waits for a stream', () => {
  let backend: HoldingBackend;
  let gateway: AttemptGateway;
  let pool: Http2SessionPool | undefined;
  const timeouts: AttemptTimeouts = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
  /** A pool of one session taking one stream (the backend's limit, learnt from a first request), whose one stream a `/hold` request then holds. */
  const heldPool = async (connectTimeoutMs: number, maxPending?: number) => {
    const created = new Http2SessionPool(
      { host: '127.0.0.1', address: `127.0.0.1:${backend.port}`, connectTimeoutMs, tls: undefined },
      { maxSessions: 1, idleMs: 60_000, ...(maxPending === undefined ? {} : { maxPending }) },
    );
    pool = created;
    gateway.attempt = (context, pick) => http2Attempt(context, created.reserve, pick, timeouts, null, 'http', created);
    const first = backend.sessions.length;
    expect(await gateway.send('/quick')).toEqual({ status: 200, body: `on session ${first}` });
    const holding = gateway.send('/hold');
    expect(await until(() => backend.held.length === 1, 3_000)).toBe(true);
    return { pool: created, first, holding };
  };
  /** Sends a request and, once it waits in the pool's queue (the `waiting`-th), resolves with its `answer` to come. */
  const queued = async (path: string, waiting: number) => {
    const answer = gateway.send(path);
    expect(await until(() => pool!.waiting === waiting, 3_000), `${pool!.waiting} requests wait`).toBe(true);
    return { answer };
  };
  /** The pool-overflow the last attempt ended with, which counts against nobody. */
  const expectOverflow = () => {
    const { result, outcome } = gateway.ended.at(-1)!;
    expect(result).toMatchObject({ ok: false, errorClass: 'pool-overflow', responseStarted: false });
    expect(isUpstreamFailure(outcome!)).toBe(false);
  };

  beforeAll(async () => {
    [backend, gateway] = await Promise.all([startHoldingBackend(), startAttemptGateway()]);
  });
  afterEach(async () => {
    for (const session of backend.sessions) session.destroy();
    backend.held.length = 0;
    gateway.ended.length = 0;
    await pool?.close();
    pool = undefined;
  });
  afterAll(async () => {
    await Promise.all([backend.close(), gateway.close()]);
  });

  it('sends the waiting requests in the order they came, each when a stream closes, on the sessions it has, counting nothing against the instance', async () => {
    const { first, holding } = await heldPool(5_000);
    const order: string[] = [];
    const second = (await queued('/hold', 1)).answer.then((answer) => (order.push('second'), answer));
    const third = (await queued('/hold', 2)).answer.then((answer) => (order.push('third'), answer));
    // One stream at a time: each answer lets the oldest waiting request have the stream.
    for (const remaining of [2, 1, 0]) {
      backend.held.shift()!();
      if (remaining > 0) expect(await until(() => backend.held.length === 1 && pool!.waiting === remaining - 1, 3_000)).toBe(true);
    }
    const bodies = (await Promise.all([holding, second, third])).map(({ status, body }) => `${status} ${body}`);
    expect(bodies).toEqual([0, 1, 2].map(() => `200 on session ${first}`));
    expect(order).toEqual(['second', 'third']);
    expect(backend.sessions.length).toBe(first + 1);
    expect(gateway.ended.map(({ outcome }) => outcome)).toEqual([1, 2, 3, 4].map(() => expect.objectContaining({ ok: true })));
  });

  it('answers 503 pool-overflow at once, counted against nobody, when maxPending requests already wait', async () => {
    const { holding } = await heldPool(5_000, 1);
    const { answer: waiting } = await queued('/quick', 1);
    const started = performance.now();
    expect((await gateway.send('/quick')).status).toBe(503);
    expect(performance.now() - started).toBeLessThan(1_000);
    expectOverflow();
    backend.held.shift()!();
    expect((await holding).status).toBe(200);
    expect((await waiting).status).toBe(200);
  });

  it('answers 503 pool-overflow, counted against nobody, when no stream comes free within the connect timeout', async () => {
    const { holding } = await heldPool(200);
    const started = performance.now();
    expect((await gateway.send('/quick')).status).toBe(503);
    expect(performance.now() - started).toBeGreaterThanOrEqual(199);
    expect(performance.now() - started).toBeLessThan(2_000);
    expectOverflow();
    expect(pool!.waiting).toBe(0);
    backend.held.shift()!();
    expect((await holding).status).toBe(200);
  });

  it('takes a waiting request whose client went away out of the queue at once, cancelled, holding nothing', async () => {
    const { first, holding } = await heldPool(5_000, 1);
    const client = connect(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write('GET /quick HTTP/1.1\r\nhost: gateway\r\n\r\n');
    expect(await until(() => pool!.waiting === 1, 3_000)).toBe(true);
    client.destroy();
    // Left in the queue, it would hold the one place until the connect timeout (5 s).
    expect(await until(() => pool!.waiting === 0, 2_000), 'the request left the queue').toBe(true);
    expect(await until(() => gateway.ended.length === 2, 2_000)).toBe(true);
    expect(gateway.ended[1]).toEqual({ result: expect.objectContaining({ ok: false, errorClass: 'cancelled' }), outcome: expect.objectContaining({ ok: false, errorClass: 'cancelled' }) });
    expect(gateway.ended[1]!.result).not.toHaveProperty('released');
    // Its place is free for the next request, which gets the stream when it closes.
    const { answer: next } = await queued('/quick', 1);
    backend.held.shift()!();
    expect(await holding).toEqual({ status: 200, body: `on session ${first}` });
    expect(await next).toEqual({ status: 200, body: `on session ${first}` });
  });

  it("ends a call whose deadline passes while it waits as deadline-exceeded, its pick released unused: the queue time is no latency sample of the instance's", async () => {
    const { pool: held, holding } = await heldPool(5_000);
    gateway.attempt = (context, pick) => http2Attempt(context, held.reserve, pick, { ...timeouts, deadlineMs: 200 }, null, 'http', held);
    // It waits: the one session's one stream is held.
    expect((await gateway.send('/quick')).status).toBe(504);
    expect(held.waiting).toBe(0);
    // Reported as deadline-exceeded with the ~200 ms it waited, p2c-ewma would take the wait as the instance's latency.
    expect(gateway.ended.at(-1)).toEqual({ result: expect.objectContaining({ ok: false, errorClass: 'deadline-exceeded' }), outcome: { ok: false, latencyMs: 0, errorClass: 'cancelled' } });
    backend.held.shift()!();
    expect((await holding).status).toBe(200);
  });

  it('fails the waiting requests as pool-closed, counted against nobody, when the pool closes', async () => {
    const { holding } = await heldPool(5_000);
    const { answer: waiting } = await queued('/quick', 1);
    const closing = pool!.close();
    const { status, body } = await waiting;
    expect({ status, error: JSON.parse(body).error }).toEqual({ status: 503, error: 'pool-closed' });
    expect(isUpstreamFailure(gateway.ended.at(-1)!.outcome!)).toBe(false);
    // The held stream still finishes, and the close waits for it.
    backend.held.shift()!();
    expect((await holding).status).toBe(200);
    await closing;
  });
});

describe('Http2StreamQueue', () => {
  it('keeps no process alive with a waiting request: its wait timer is unref\'d, and close() rejects the waiter at once', async () => {
    const queue = new Http2StreamQueue();
    const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    // Synchronous between the two reads: only add() can arm a timer here (unref'd ones are not listed).
    const before = timers();
    const waiting = queue.add(60_000, () => new Error('expired'));
    expect(timers()).toBe(before);
    queue.rejectAll(() => new Error('closed'));
    await expect(waiting).rejects.toThrow('closed');
    expect(queue.length).toBe(0);
  });
});
