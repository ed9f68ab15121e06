import { Agent } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { accessLogText } from '../access-log/index.ts';
import { heldBackendCache, statusAndBody } from './cache-testing.ts';

/** The cache with `lock` on (5 s unless `settings` say) in front of a backend that holds each request until the test answers it. */
const lockSetup = (settings: Parameters<typeof heldBackendCache>[0], policy = TEST_PROXY_POLICY) => heldBackendCache({ lockTimeoutMs: 5_000, ...settings }, { policy });

describe('cache: concurrent misses of one key wait for one fetch (lock)', () => {
  let setup: Awaited<ReturnType<typeof lockSetup>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  it('sends one request upstream for three concurrent misses, and answers the two that waited from its stored answer (HIT)', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const others = [send('/a'), send('/a', { method: 'HEAD' })];
    // A request runs to its first wait as it arrives: by now both wait for the first one's fetch.
    await waitFor(() => contexts.length === 3, { message: 'both later misses arrived' });
    setup.answer(1);
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    expect((await Promise.all(others)).map(statusAndBody)).toEqual([['HIT', 'request 1'], ['HIT', '']]);
    expect(held).toHaveLength(1);
    expect([await setup.count('MISS'), await setup.count('HIT')]).toEqual([1, 2]);
  });

  it('takes the lock with a HEAD miss, which fetches as a GET (convertHead): a GET after it waits for that fetch and is its HIT', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    const head = send('/a', { method: 'HEAD' });
    await waitFor(() => held.length === 1, { message: 'the HEAD reached the backend' });
    expect(held[0]!.req.method).toBe('GET');
    const get = send('/a');
    await waitFor(() => contexts.length === 2, { message: 'the GET arrived' });
    setup.answer(1);
    expect(statusAndBody(await head)).toEqual(['MISS', '']);
    expect(statusAndBody(await get)).toEqual(['HIT', 'request 1']);
    expect(held).toHaveLength(1);
  });

  it('lets go of the lock of a HEAD fetched as a GET whose client leaves mid-body: a GET waiting on it goes upstream then', async () => {
    // A lock timeout far past the wait below: the GET goes upstream because the lock was let go.
    setup = await lockSetup({ lockTimeoutMs: 120_000 });
    const { send, held, contexts } = setup;
    const client = connect(setup.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(`HEAD /a HTTP/1.1\r\nhost: 127.0.0.1:${setup.port}\r\n\r\n`);
    await waitFor(() => held.length === 1, { message: 'the HEAD reached the backend' });
    held[0]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'content-length': '100' });
    held[0]!.write('part of it');
    const get = send('/a');
    await waitFor(() => contexts.length === 2, { message: 'the GET arrived' });
    client.destroy();
    await waitFor(() => held.length === 2, { message: 'the waiting GET went upstream once the HEAD\'s client left' });
    setup.answer(2);
    expect(statusAndBody(await get)).toEqual(['MISS', 'request 2']);
  });

  it('takes no lock with a HEAD miss sent upstream as a HEAD (convertHead: false): a GET after it goes upstream beside it', async () => {
    setup = await lockSetup({ convertHead: false });
    const { send, held } = setup;
    const head = send('/a', { method: 'HEAD' });
    await waitFor(() => held.length === 1, { message: 'the HEAD reached the backend' });
    expect(held[0]!.req.method).toBe('HEAD');
    const get = send('/a');
    await waitFor(() => held.length === 2, { message: 'the GET went upstream beside the HEAD' });
    for (const n of [1, 2]) setup.answer(n);
    expect(statusAndBody(await head)).toEqual(['MISS', '']);
    expect(statusAndBody(await get)).toEqual(['MISS', 'request 2']);
  });

  it('sends a miss upstream beside the fetch once the lock timeout passed, and stores nothing of its answer', async () => {
    setup = await lockSetup({ lockTimeoutMs: 200 });
    const { send, held } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const second = send('/a');
    await waitFor(() => held.length === 2, { message: 'the second miss went upstream after the lock timeout' });
    setup.answer(1);
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    setup.answer(2);
    expect(statusAndBody(await second)).toEqual(['MISS', 'request 2']);
    // The first one's answer is the stored one: the second's did not replace it.
    expect(statusAndBody(await send('/a'))).toEqual(['HIT', 'request 1']);
  });

  it('lets concurrent misses of other keys go upstream at once', async () => {
    setup = await lockSetup({});
    const { send, held } = setup;
    const answers = [send('/a'), send('/b')];
    await waitFor(() => held.length === 2, { message: 'both misses reached the backend' });
    for (const n of [1, 2]) setup.answer(n);
    // Either may have reached the backend first.
    expect((await Promise.all(answers)).map(statusAndBody).sort()).toEqual([['MISS', 'request 1'], ['MISS', 'request 2']]);
  });

  it('ends the wait of a client that leaves (499), sending nothing upstream for it', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const client = connect(setup.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(`GET /a HTTP/1.1\r\nhost: 127.0.0.1:${setup.port}\r\n\r\n`);
    await waitFor(() => contexts.length === 2, { message: 'the second miss arrived' });
    client.destroy();
    await waitFor(() => contexts[1]!.outcome.status === 499, { message: 'the waiting request ends as the client\'s' });
    setup.answer(1);
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    expect(held).toHaveLength(1);
  });

  it('goes upstream itself when the fetch it waited for stored nothing', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const second = send('/a');
    await waitFor(() => contexts.length === 2, { message: 'the second miss arrived' });
    held[0]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('not for keeping');
    expect(statusAndBody(await first)).toEqual(['MISS', 'not for keeping']);
    await waitFor(() => held.length === 2, { message: 'the second miss went upstream once the first was answered' });
    setup.answer(2);
    expect(statusAndBody(await second)).toEqual(['MISS', 'request 2']);
  });

  it('lets a Range miss take the lock and fetch the whole answer: its client has its part while the body streams, the misses behind it are HITs of the stored answer', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    // A player's connection, kept open: its 206 ends with its part, while the body is read on for the cache and the lock still held.
    const agent = new Agent({ keepAlive: true });
    try {
      const ranged = send('/a', { headers: { range: 'bytes=0-1' }, agent });
      await waitFor(() => held.length === 1, { message: 'the Range miss reached the backend' });
      expect(held[0]!.req.headers.range).toBeUndefined();
      const waiting = [send('/a'), send('/a', { headers: { range: 'bytes=-2' } })];
      await waitFor(() => contexts.length === 3, { message: 'the later misses arrived' });
      held[0]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'content-length': '9' });
      held[0]!.write('re');
      const part = await ranged;
      expect([part.status, part.headers['content-range'], ...statusAndBody(part)]).toEqual([206, 'bytes 0-1/9', 'MISS', 're']);
      // The rest of the body is still to come: nothing stored yet, the others still wait.
      expect(contexts.slice(1).map((context) => context.response.headersSent)).toEqual([false, false]);
      held[0]!.end('quest 1');
      const answers = await Promise.all(waiting);
      expect(answers.map(statusAndBody)).toEqual([['HIT', 'request 1'], ['HIT', ' 1']]);
      expect(answers.map((answer) => answer.status)).toEqual([200, 206]);
      expect(held).toHaveLength(1);
      expect(accessLogText(contexts[0]!, false)).toContain('"status":206');
    } finally {
      agent.destroy();
    }
  });

  // The fetch's body still streams (a long download, an event stream): what it is to become is
  // known from its head, or once its copy outgrew maxEntrySize. The lock timeout and the body
  // timeout (a minute each) would hold the waiter far past the test's own deadline.
  it.each([
    ['its head says it may not be kept', { 'cache-control': 'no-store' }, 'streaming, '],
    ['it grew past maxEntrySize', { 'cache-control': 'max-age=60' }, 'x'.repeat(2_048)],
  ])('lets a waiter go upstream as soon as the fetch it waits for will store nothing: %s, its body not ended', async (_name, headers, part) => {
    setup = await lockSetup({ lockTimeoutMs: 60_000 }, { ...TEST_PROXY_POLICY, bodyTimeoutMs: 60_000 });
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const second = send('/a');
    await waitFor(() => contexts.length === 2, { message: 'the second miss arrived' });
    held[0]!.writeHead(200, { 'content-type': 'text/plain', ...headers }).write(part);
    await waitFor(() => held.length === 2, { message: 'the waiter went upstream while the first answer still streamed' });
    held[0]!.end('end');
    setup.answer(2);
    expect(statusAndBody(await first)).toEqual(['MISS', `${part}end`]);
    expect(statusAndBody(await second)).toEqual(['MISS', 'request 2']);
  });

  it('hands the lock to one waiter when the fetch stored nothing, so that the backend sees the others one at a time, never together', async () => {
    setup = await lockSetup({});
    const { send, held, contexts, load } = setup;
    const answers = [send('/a')];
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    answers.push(send('/a'), send('/a'), send('/a'));
    await waitFor(() => contexts.length === 4, { message: 'the three waiters arrived' });
    // Each a 404 (a status not kept): every waiter goes upstream in the end, one after the other.
    for (const n of [1, 2, 3, 4]) {
      await waitFor(() => held.length >= n, { message: `request ${n} reached the backend` });
      setup.answer(n, {}, 404);
    }
    const results = await Promise.all(answers);
    expect(results.map((response) => [response.status, ...statusAndBody(response)])).toEqual([1, 2, 3, 4].map((n) => [404, 'MISS', `request ${n}`]));
    expect(load.maxActive).toBe(1);
    expect(await setup.count('MISS')).toBe(4);
  });

  it('lets waiters for two other Vary variants go upstream together once the fetch stored its own, each variant\'s later waiters waiting on its fetch', async () => {
    // The lock and headers timeouts far past the test's wait: a waiter held behind another variant's fetch would not go before the end.
    setup = await lockSetup({ lockTimeoutMs: 60_000 }, { ...TEST_PROXY_POLICY, headersTimeoutMs: 60_000 });
    const { send, held, contexts } = setup;
    const varied = { vary: 'Accept-Language', 'cache-control': 'max-age=60' };
    const first = send('/a', { headers: { 'accept-language': 'en' } });
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const waiters = ['de', 'de', 'fr'].map((language) => send('/a', { headers: { 'accept-language': language } }));
    await waitFor(() => contexts.length === 4, { message: 'the three waiters arrived' });
    setup.answer(1, varied);
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    // The stored English answer is none of theirs: one German and the French go upstream at once, the other German waits for the first.
    await waitFor(() => held.length === 3, { message: 'a waiter of each variant went upstream' });
    const german = held[1]!.req.headers['accept-language'] === 'de' ? 2 : 3;
    for (const n of [2, 3]) setup.answer(n, varied);
    const [de1, de2, fr] = (await Promise.all(waiters)).map(statusAndBody);
    expect([de1, de2].sort()).toEqual([['HIT', `request ${german}`], ['MISS', `request ${german}`]]);
    expect(fr).toEqual(['MISS', `request ${5 - german}`]);
    expect(held).toHaveLength(3);
  });

  it('hands the lock on to HEAD waiters in turn too, so that a fetch that stored nothing sends none of them upstream beside another', async () => {
    setup = await lockSetup({});
    const { send, held, contexts, load } = setup;
    const answers = [send('/a')];
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    answers.push(send('/a', { method: 'HEAD' }), send('/a', { method: 'HEAD' }), send('/a'));
    await waitFor(() => contexts.length === 4, { message: 'the three waiters arrived' });
    for (const n of [1, 2, 3, 4]) {
      await waitFor(() => held.length >= n, { message: `request ${n} reached the backend` });
      setup.answer(n, {}, 404);
    }
    expect((await Promise.all(answers)).map((response) => response.status)).toEqual([404, 404, 404, 404]);
    expect(load.maxActive).toBe(1);
  });

  it('stores the answer of a waiter that took the lock after an invalidation of its key, which came before its own fetch', async () => {
    setup = await lockSetup({});
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const waiters = [send('/a'), send('/a')];
    await waitFor(() => contexts.length === 3, { message: 'both waiters arrived' });
    // A write to /a succeeds while the first fetch is under way: that fetch's answer may be the old one, not to be stored.
    const write = send('/a', { method: 'POST' });
    await waitFor(() => held.length === 2, { message: 'the POST reached the backend' });
    setup.answer(2, {}, 201);
    expect((await write).status).toBe(201);
    setup.answer(1);
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    // One waiter takes the lock; its fetch began after the write, so its answer is stored for the other.
    await waitFor(() => held.length === 3, { message: 'one waiter went upstream with the lock' });
    setup.answer(3);
    const settled: unknown[] = [];
    for (const waiter of waiters) void waiter.then((response) => settled.push(response));
    await waitFor(() => settled.length === 2 || held.length === 4, { message: 'the other waiter was answered or went upstream' });
    expect(held).toHaveLength(3);
    expect((await Promise.all(waiters)).map(statusAndBody).sort()).toEqual([['HIT', 'request 3'], ['MISS', 'request 3']]);
  });

  it('keeps the waiters\' own timeout across a handover: one that waits on again goes upstream when its first wait began plus the timeout', async () => {
    // The taker's fetch is held past the test's end: no headers timeout may end it and free the lock.
    setup = await lockSetup({ lockTimeoutMs: 3_000 }, { ...TEST_PROXY_POLICY, headersTimeoutMs: 60_000 });
    const { send, held, contexts, load } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    const began = performance.now();
    const waiters = [send('/a'), send('/a')];
    await waitFor(() => contexts.length === 3, { message: 'both waiters arrived' });
    // Half-way through the waiters' timeout the fetch stores nothing: one waiter takes the lock, the other waits on.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    setup.answer(1, {}, 404);
    await waitFor(() => held.length === 3, { message: 'the waiter left waiting went upstream at its timeout', timeoutMs: 15_000 });
    const waited = load.arrivals[2]! - began;
    // At 3 s from its start, not 3 s from the handover (4.5 s); never before its timeout.
    expect(waited).toBeGreaterThanOrEqual(2_950);
    expect(waited).toBeLessThan(4_200);
    expect(load.arrivals[1]! - began).toBeLessThan(waited);
    setup.answer(2);
    setup.answer(3);
    expect((await first).status).toBe(404);
    expect((await Promise.all(waiters)).map(statusAndBody).sort()).toEqual([['MISS', 'request 2'], ['MISS', 'request 3']]);
  });
});
