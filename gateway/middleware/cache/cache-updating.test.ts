import type { OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CacheSettings, CacheStaleSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { accessLogText } from '../access-log/index.ts';
import { responseTransform } from '../response-transform/index.ts';
import { TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { heldBackendCache, statusAndBody, USE_STALE_NOT_CONFIGURED } from './cache-testing.ts';

/** `useStale: { on: [updating] }`, as resolved. */
const UPDATING: CacheStaleSettings = { on: ['updating'], maxStaleMs: 86_400_000, answerDirectives: true };

describe('cache: a stale answer sent at once while another request updates it (useStale updating, stale-while-revalidate)', () => {
  let setup: Awaited<ReturnType<typeof heldBackendCache>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  /**
   * A cache with `useStale` whose `/a` holds `request 1` (stored with `headers`), `staleMs` past its
   * one second of freshness, and a first stale request for it held at the backend: the updater.
   */
  async function updating(useStale: CacheStaleSettings, headers: OutgoingHttpHeaders, staleMs = 2_000) {
    setup = await heldBackendCache({ useStale }, { clock: true });
    const { send, held } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    setup.answer(1, { etag: '"v1"', 'cache-control': 'max-age=1', ...headers });
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    setup.later(1_000 + staleMs);
    const updater = send('/a');
    await waitFor(() => held.length === 2, { message: 'the updater reached the backend' });
    return { setup, updater };
  }

  it('answers concurrent stale requests from the stored answer (UPDATING) while one goes upstream, a HEAD and a met If-None-Match as a hit would', async () => {
    const { setup, updater } = await updating(UPDATING, {});
    const { send, held, contexts } = setup;
    const others = await Promise.all([send('/a'), send('/a'), send('/a', { method: 'HEAD' }), send('/a', { headers: { 'if-none-match': '"v1"' } })]);
    expect(others.map((response) => [response.status, ...statusAndBody(response)])).toEqual([
      [200, 'UPDATING', 'request 1'],
      [200, 'UPDATING', 'request 1'],
      [200, 'UPDATING', ''],
      [304, 'UPDATING', ''],
    ]);
    expect(Number(others[0]!.headers.age)).toBeGreaterThanOrEqual(3);
    // The updater asked with the stored validator; nothing else went upstream.
    expect(held).toHaveLength(2);
    expect(held[1]!.req.headers['if-none-match']).toBe('"v1"');
    setup.answer(2, { etag: '"v2"', 'cache-control': 'max-age=60' });
    expect(statusAndBody(await updater)).toEqual(['EXPIRED', 'request 2']);
    expect(statusAndBody(await send('/a'))).toEqual(['HIT', 'request 2']);
    expect([await setup.count('UPDATING'), await setup.count('EXPIRED')]).toEqual([4, 1]);
    expect(accessLogText(contexts[2]!, false)).toContain('"cache":"UPDATING"');
  });

  it('judges If-Match, If-Unmodified-Since and If-Range on the stored answer as a hit would (UPDATING): a 412 where one fails, a part where If-Range matches', async () => {
    const { setup, updater } = await updating(UPDATING, { 'last-modified': 'Mon, 02 Jun 2025 00:00:00 GMT' });
    const { send, held } = setup;
    const others = await Promise.all(
      [
        { 'if-match': '"v1"' },
        { 'if-match': '"v0"' },
        { 'if-unmodified-since': 'Sun, 01 Jun 2025 00:00:00 GMT' },
        { range: 'bytes=0-6', 'if-range': '"v1"' },
        { range: 'bytes=0-6', 'if-range': '"v0"' },
        { range: 'bytes=0-6', 'if-match': '"v0"' },
      ].map((headers) => send('/a', { headers })),
    );
    expect(others.map((response) => [response.status, ...statusAndBody(response)])).toEqual([
      [200, 'UPDATING', 'request 1'],
      [412, 'UPDATING', ''],
      [412, 'UPDATING', ''],
      [206, 'UPDATING', 'request'],
      [200, 'UPDATING', 'request 1'],
      [412, 'UPDATING', ''],
    ]);
    expect(others[3]!.headers['content-range']).toBe('bytes 0-6/9');
    // Nothing but the updater went upstream.
    expect(held).toHaveLength(2);
    expect(await setup.count('UPDATING')).toBe(6);
    setup.answer(2);
    expect(statusAndBody(await updater)).toEqual(['EXPIRED', 'request 2']);
  });

  it.each([
    ['useStale updating', UPDATING, {}, 2_000],
    ['the answer\'s stale-while-revalidate=5, 2 s stale', USE_STALE_NOT_CONFIGURED, { 'cache-control': 'max-age=1, stale-while-revalidate=5' }, 2_000],
    ['the answer\'s s-maxage=1, stale-while-revalidate=5 (which s-maxage does not forbid)', USE_STALE_NOT_CONFIGURED, { 'cache-control': 's-maxage=1, stale-while-revalidate=5' }, 2_000],
  ] as const)('sends UPDATING with %s', async (_what, useStale, headers, staleMs) => {
    const { setup, updater } = await updating(useStale, headers, staleMs);
    expect(statusAndBody(await setup.send('/a'))).toEqual(['UPDATING', 'request 1']);
    setup.answer(2);
    expect(statusAndBody(await updater)).toEqual(['EXPIRED', 'request 2']);
  });

  it.each([
    ['no useStale, an answer without stale-while-revalidate', USE_STALE_NOT_CONFIGURED, {}, {}, 2_000],
    ['an answer past its stale-while-revalidate=5', USE_STALE_NOT_CONFIGURED, { 'cache-control': 'max-age=1, stale-while-revalidate=5' }, {}, 7_000],
    ['useStale: false, an answer with stale-while-revalidate', { on: [], maxStaleMs: 0, answerDirectives: false }, { 'cache-control': 'max-age=1, stale-while-revalidate=60' }, {}, 2_000],
    ['useStale without updating', { ...UPDATING, on: ['error', 'http_503'] }, {}, {}, 2_000],
    ['past maxStale', { ...UPDATING, maxStaleMs: 1_000 }, {}, {}, 2_000],
    ['proxy-revalidate', UPDATING, { 'cache-control': 'max-age=1, proxy-revalidate, stale-while-revalidate=60' }, {}, 2_000],
    ['its own s-maxage', UPDATING, { 'cache-control': 's-maxage=1' }, {}, 2_000],
    ['its own s-maxage, past the stale-while-revalidate=5 it grants, however long useStale allows', UPDATING, { 'cache-control': 's-maxage=1, stale-while-revalidate=5' }, {}, 7_000],
    ['a request with max-age=0', UPDATING, {}, { 'cache-control': 'max-age=0' }, 2_000],
    ['a request with max-stale=1', UPDATING, {}, { 'cache-control': 'max-stale=1' }, 2_000],
  ] as const)('sends a concurrent stale request upstream too (no UPDATING) with %s', async (_what, useStale, headers, requestHeaders, staleMs) => {
    const { setup, updater } = await updating(useStale, headers, staleMs);
    const { send, held } = setup;
    const second = send('/a', { headers: requestHeaders });
    await waitFor(() => held.length === 3, { message: 'the second stale request went upstream' });
    setup.answer(2);
    setup.answer(3);
    await updater;
    expect((await second).headers['x-cache-status']).not.toBe('UPDATING');
    expect(await setup.count('UPDATING')).toBe(0);
  });

  it.each([
    ['its answer may not be kept', 'no-store'],
    ['its client left', 'gone'],
  ] as const)('lets the next stale request update once the updater\'s fetch ended without storing: %s', async (_what, how) => {
    setup = await heldBackendCache({ useStale: UPDATING }, { clock: true });
    const { send, held, contexts } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    setup.answer(1, { 'cache-control': 'max-age=1' });
    await first;
    setup.later(2_000);
    // The same Host as the test client's, which the key holds; its side kept open (a half-closed client counts as gone).
    const client = connect(setup.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(`GET /a HTTP/1.1\r\nhost: 127.0.0.1:${setup.port}\r\n\r\n`);
    await waitFor(() => held.length === 2, { message: 'the updater reached the backend' });
    expect(statusAndBody(await send('/a'))).toEqual(['UPDATING', 'request 1']);
    if (how === 'gone') {
      client.destroy();
      await waitFor(() => contexts[1]!.outcome.status === 499, { message: 'the updater ends as its client\'s' });
    } else {
      setup.answer(2, { 'cache-control': 'no-store' });
      await waitFor(() => contexts[1]!.response.writableEnded, { message: 'the updater was answered' });
    }
    const next = send('/a');
    await waitFor(() => held.length === 3, { message: 'the next stale request went upstream to update' });
    setup.answer(3);
    expect(statusAndBody(await next)).toEqual(['EXPIRED', 'request 3']);
    client.destroy();
  });
});

describe('cache: a stale answer sent at once to its first request too, the update fetched in the background (backgroundUpdate)', () => {
  let setup: Awaited<ReturnType<typeof heldBackendCache>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  /** A cache with `backgroundUpdate` (and `settings`) whose `/a` holds `request 1` (ETag "v1", one second fresh), now 2 s stale. */
  async function staleEntry(settings: Partial<CacheSettings> = {}, before: Middleware[] = [], policy = TEST_PROXY_POLICY) {
    setup = await heldBackendCache({ useStale: UPDATING, backgroundUpdateTimeoutMs: 60_000, ...settings }, { clock: true, before, policy });
    const { send, held } = setup;
    const first = send('/a');
    await waitFor(() => held.length === 1, { message: 'the first miss reached the backend' });
    setup.answer(1, { etag: '"v1"', 'cache-control': 'max-age=1' });
    expect(statusAndBody(await first)).toEqual(['MISS', 'request 1']);
    setup.later(3_000);
    return setup;
  }

  it('answers the first stale request at once (STALE), its access line done, while the update waits upstream; others get UPDATING; the new answer is then a HIT', async () => {
    const { send, held, contexts } = await staleEntry();
    // Answered while the backend still holds the update: without backgroundUpdate this request would be that update, and wait.
    const stale = await send('/a', { method: 'HEAD' });
    expect([stale.status, ...statusAndBody(stale)]).toEqual([200, 'STALE', '']);
    expect(Number(stale.headers.age)).toBeGreaterThanOrEqual(3);
    await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
    // The update is a GET with the stored validator, not the client's HEAD.
    expect([held[1]!.req.method, held[1]!.req.headers['if-none-match']]).toEqual(['GET', '"v1"']);
    // The client's answer ended with the stale one: its access line reads it, not the update.
    expect(contexts[1]!.response.writableEnded).toBe(true);
    expect(accessLogText(contexts[1]!, false)).toMatch(/"method":"HEAD".*"status":200.*"cache":"STALE"/);
    const others = await Promise.all([send('/a'), send('/a', { headers: { 'if-none-match': '"v1"' } }), send('/a', { headers: { range: 'bytes=0-6' } })]);
    expect(others.map((response) => [response.status, ...statusAndBody(response)])).toEqual([
      [200, 'UPDATING', 'request 1'],
      [304, 'UPDATING', ''],
      [206, 'UPDATING', 'request'],
    ]);
    // One fetch for the stored answer, however many stale requests came meanwhile.
    expect(held).toHaveLength(2);
    // Counted now: a poll below that comes before the update is stored is one more UPDATING, however the machine is loaded.
    expect([await setup!.count('STALE'), await setup!.count('UPDATING'), await setup!.count('EXPIRED')]).toEqual([1, 3, 0]);
    setup!.answer(2, { etag: '"v2"', 'cache-control': 'max-age=60' });
    await waitFor(async () => statusAndBody(await send('/a'))[0] === 'HIT', { message: 'the background update was stored' });
    expect(statusAndBody(await send('/a'))).toEqual(['HIT', 'request 2']);
    expect(held).toHaveLength(2);
    expect([await setup!.count('STALE'), await setup!.count('EXPIRED')]).toEqual([1, 0]);
  });

  it('sends a request with Cache-Control: no-store upstream (BYPASS): not the stale answer, no update started, and its answer replaces nothing', async () => {
    const { send, held } = await staleEntry();
    const bypass = send('/a', { headers: { 'cache-control': 'no-store' } });
    await waitFor(() => held.length === 2, { message: 'the no-store request reached the backend' });
    setup!.answer(2, { etag: '"v2"', 'cache-control': 'max-age=60' });
    expect(statusAndBody(await bypass)).toEqual(['BYPASS', 'request 2']);
    // The stored answer is still the stale one, and no update holds it: the next request gets it and starts one.
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 3, { message: 'the next stale request started the update' });
    expect(held[2]!.req.headers['if-none-match']).toBe('"v1"');
  });

  it('freshens the stored answer with a 304 to the update: the next request is a HIT with the stored body', async () => {
    const { send, held } = await staleEntry();
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
    held[1]!.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
    await waitFor(async () => statusAndBody(await send('/a'))[0] === 'HIT', { message: 'the 304 freshened the stored answer' });
    const hit = await send('/a');
    expect([...statusAndBody(hit), hit.headers['cache-control']]).toEqual(['HIT', 'request 1', 'max-age=60']);
    expect(held).toHaveLength(2);
  });

  it.each([
    ['answers 500', 'status'],
    ['is cut before its head (reset-before-headers)', 'reset'],
    ['answers a body over maxEntrySize', 'big'],
    ['answers no-store', 'no-store'],
    ['is cut after its head, mid-body (reset-after-headers)', 'cut'],
    ['answers no-store and is cut mid-body', 'no-store-cut'],
    ['is cut mid-body on a route whose responseTransform holds the body', 'transformed-cut'],
  ] as const)('stores nothing when the update %s, and the next stale request starts a new one', async (_what, how) => {
    // A response transform buffers the body: a cut then finds the update's response with nothing written, and destroys it.
    const { send, held } = await staleEntry({}, how === 'transformed-cut' ? [responseTransform((body) => body)] : []);
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
    if (how === 'status') setup!.answer(2, { 'cache-control': 'max-age=60' }, 500);
    else if (how === 'big') held[1]!.writeHead(200, { 'cache-control': 'max-age=60' }).end(Buffer.alloc(4_096, 'x'));
    else if (how === 'no-store') setup!.answer(2, { 'cache-control': 'no-store' });
    else if (how === 'cut' || how === 'no-store-cut' || how === 'transformed-cut') {
      // Half of the announced body, then the connection goes: the proxy cuts the response that had its head.
      const response = held[1]!.writeHead(200, { 'cache-control': how === 'cut' ? 'max-age=60' : 'no-store', 'content-length': 200 });
      response.write(Buffer.alloc(100, 'x'), () => response.socket!.destroy());
    } else held[1]!.socket!.destroy();
    // Once the failed update let go of its mark, a stale request is the first again: STALE, and a new update.
    await waitFor(async () => statusAndBody(await send('/a'))[0] === 'STALE', { message: 'the failed update let go of its mark' });
    await waitFor(() => held.length === 3, { message: 'the next stale request started a new update' });
    setup!.answer(3);
    await waitFor(async () => statusAndBody(await send('/a'))[0] === 'HIT', { message: 'the new update was stored' });
    expect(statusAndBody(await send('/a'))).toEqual(['HIT', 'request 3']);
  });

  it.each([
    ['over maxEntrySize by its Content-Length', { 'cache-control': 'max-age=60', 'content-length': 1_000_000 }],
    ['over maxEntrySize as its chunks come', { 'cache-control': 'max-age=60' }],
    ['no-store', { 'cache-control': 'no-store', 'content-length': 1_000_000 }],
  ] as const)('leaves unread the body of an update it will not store (%s): nobody wants it, and each next stale request would start one more', async (_what, headers) => {
    const { send, held } = await staleEntry();
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
    const update = held[1]!.writeHead(200, headers);
    let closed = false;
    update.once('close', () => (closed = true));
    // A long body that keeps coming, never silent for the body timeout.
    const writer = setInterval(() => update.write(Buffer.alloc(512, 'x')), 50);
    try {
      await waitFor(() => closed, { message: 'the gateway left the body of an update it will not store', timeoutMs: 10_000 });
    } finally {
      clearInterval(writer);
    }
    // The stored answer stays as it was; the next stale request updates again.
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 3, { message: 'the next stale request started a new update' });
  });

  it.each([
    ['stored a new answer', 200],
    ['freshened the stored answer with a 304', 304],
    ['stored a new answer whose body came in two parts', 2],
  ] as const)('clears its backgroundUpdate.timeout bound once the update %s: no timer holds the replaced answer and its context until the bound', async (_what, status) => {
    // A bound that stays set would keep the replaced answer (up to maxEntrySize) alive for its whole timeout after every update.
    const BOUND_MS = 3_210_000;
    const { send, held } = await staleEntry({ backgroundUpdateTimeoutMs: BOUND_MS });
    const setTimer = vi.spyOn(globalThis, 'setTimeout');
    const clearTimer = vi.spyOn(globalThis, 'clearTimeout');
    try {
      expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
      await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
      const bounds = setTimer.mock.results.filter((_result, index) => setTimer.mock.calls[index]![1] === BOUND_MS).map((result) => result.value as unknown);
      expect(bounds).toHaveLength(1);
      if (status === 304) held[1]!.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
      else if (status === 2) {
        held[1]!.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 9 }).write('request ');
        // The head is in and the body is being read on for the cache alone: the client's answer is long done.
        expect(statusAndBody(await send('/a'))).toEqual(['UPDATING', 'request 1']);
        held[1]!.end('2');
      } else setup!.answer(2, { etag: '"v2"', 'cache-control': 'max-age=60' });
      const body = status === 304 ? 'request 1' : 'request 2';
      await waitFor(async () => statusAndBody(await send('/a'))[0] === 'HIT', { message: 'the background update was stored' });
      expect(statusAndBody(await send('/a'))).toEqual(['HIT', body]);
      await waitFor(() => clearTimer.mock.calls.some(([timer]) => timer === bounds[0]), { message: 'the bound of the stored update was cleared' });
    } finally {
      setTimer.mockRestore();
      clearTimer.mockRestore();
    }
  });

  it.each([
    ['sends no head', false],
    ['sends its head and part of its body, then nothing', true],
  ] as const)('cuts an update that %s once backgroundUpdate.timeout passed, on a service without headers or body timeouts: nothing stored, and the next stale request starts a new one', async (_what, head) => {
    const { send, held, load } = await staleEntry({ backgroundUpdateTimeoutMs: 1_000 }, [], { ...TEST_PROXY_POLICY, headersTimeoutMs: 0, bodyTimeoutMs: 0 });
    // Before the request that starts the update, hence before its bound's timer: a lower bound a loaded machine's late polls cannot raise.
    const started = performance.now();
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 2, { message: 'the background update reached the backend' });
    if (head) held[1]!.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 200 }).write(Buffer.alloc(100, 'x'));
    let cutAt = 0;
    held[1]!.once('close', () => (cutAt = performance.now()));
    // The update holds the mark meanwhile: others get the stale answer, and start no fetch of their own.
    expect(statusAndBody(await send('/a'))).toEqual(['UPDATING', 'request 1']);
    await waitFor(() => cutAt > 0, { message: 'the gateway cut the update past its bound', timeoutMs: 10_000 });
    expect(cutAt - started).toBeGreaterThanOrEqual(900);
    expect(load.active).toBe(0);
    // The mark went with it: the next stale request is the first again, and updates anew; the cut answer was not stored.
    expect(statusAndBody(await send('/a'))).toEqual(['STALE', 'request 1']);
    await waitFor(() => held.length === 3, { message: 'the next stale request started a new update' });
    setup!.answer(3);
    await waitFor(async () => statusAndBody(await send('/a'))[0] === 'HIT', { message: 'the new update was stored' });
    expect(statusAndBody(await send('/a'))).toEqual(['HIT', 'request 3']);
  }, 20_000);
});
