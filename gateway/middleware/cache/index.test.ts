import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CacheSettings, ConsumerConfig } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';
import { sendReplacement, startResponseBody } from '../../transports/transport-response-body.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { CACHE_TEST_SETTINGS } from './cache-testing.ts';
import { requestId } from '../request-id/index.ts';
import { cache, servingCachedHits, variantKey, varyNames } from './index.ts';

/** The shared test settings with the default `statuses`. */
const SETTINGS: CacheSettings = { ...CACHE_TEST_SETTINGS, statuses: [200, 203, 204, 300, 301, 404, 410] };

/**
 * A proxy as the transports are to the middleware: the hooks over the upstream's headers, then the
 * body through `startResponseBody` in two chunks; every call counted, its number in the body.
 */
function countingUpstream(status: number, headers: OutgoingHttpHeaders, body = 'answer') {
  const upstream = {
    calls: 0,
    async proxy(context: GatewayContext): Promise<void> {
      upstream.calls += 1;
      const text = Buffer.from(`${body} ${upstream.calls}`);
      const outgoing = applyHeaderHooks(context, status, { 'content-type': 'text/plain', ...headers });
      context.outcome = { status, attempts: 1, upstream: '127.0.0.1:1', bytesOut: 0 };
      const sink = startResponseBody(context, status, outgoing);
      sink.write(text.subarray(0, 3));
      sink.end(text.subarray(3));
    },
  };
  return upstream;
}

describe('cache', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each([
    ['max-age', 200, { 'cache-control': 'max-age=60' }, {}, true],
    ['s-maxage', 200, { 'cache-control': 's-maxage=60' }, {}, true],
    ['Expires in the future', 200, { expires: new Date(Date.now() + 60_000).toUTCString(), date: new Date().toUTCString() }, {}, true],
    ['a 404 with max-age', 404, { 'cache-control': 'max-age=60' }, {}, true],
    ['public with Authorization', 200, { 'cache-control': 'public, max-age=60' }, { authorization: 'Bearer x' }, true],
    ['no explicit freshness', 200, {}, {}, false],
    ['Last-Modified only (no heuristic freshness)', 200, { 'last-modified': new Date(Date.now() - 86_400_000).toUTCString() }, {}, false],
    ['no-store', 200, { 'cache-control': 'no-store, max-age=60' }, {}, false],
    ['no-cache', 200, { 'cache-control': 'no-cache, max-age=60' }, {}, false],
    ['must-revalidate', 200, { 'cache-control': 'max-age=60, must-revalidate' }, {}, false],
    ['private', 200, { 'cache-control': 'private, max-age=60' }, {}, false],
    ['Set-Cookie', 200, { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, {}, false],
    ['Set-Cookie even when public', 200, { 'cache-control': 'public, max-age=60', 'set-cookie': 'a=b' }, {}, false],
    ['Vary: *', 200, { 'cache-control': 'max-age=60', vary: '*' }, {}, false],
    ['Authorization without public', 200, { 'cache-control': 'max-age=60' }, { authorization: 'Bearer x' }, false],
    ['a status not listed (500)', 500, { 'cache-control': 'max-age=60' }, {}, false],
    ['a request that said no-store', 200, { 'cache-control': 'max-age=60' }, { 'cache-control': 'no-store' }, false],
  ] as const)('stores an answer with %s: %s', async (_what, status, headers, requestHeaders, storable) => {
    const upstream = countingUpstream(status, headers);
    server = await serveMiddleware([cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    const first = await server.send('/a', { headers: requestHeaders });
    const second = await server.send('/a', { headers: requestHeaders });
    expect(upstream.calls).toBe(storable ? 1 : 2);
    expect(second.body.toString()).toBe(first.body.toString().replace(/\d+$/, storable ? '1' : '2'));
    expect(second.headers['x-cache-status']).toBe(storable ? 'HIT' : 'cache-control' in requestHeaders ? 'BYPASS' : 'MISS');
  });

  it.each([
    ['a HEAD', 'GET', {}, {}, 'MISS'],
    ['a HEAD with Cache-Control: no-cache (nginx converts it too: the answer replaces the stored one, as a GET\'s)', 'GET', {}, { 'cache-control': 'no-cache' }, 'BYPASS'],
    ['a HEAD with Cache-Control: no-store (nothing to store)', 'HEAD', {}, { 'cache-control': 'no-store' }, 'BYPASS'],
    ['a HEAD with convertHead: false', 'HEAD', { convertHead: false }, {}, 'MISS'],
    ['a HEAD to a cache whose methods leave out GET', 'HEAD', { methods: ['HEAD'] }, {}, 'MISS'],
  ] as const)('sends %s upstream as a %s, the head alone to the client, its answer stored for the next GET only when fetched as a GET', async (_what, sentAs, settings, headers, status) => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60' });
    const methods: string[] = [];
    server = await serveMiddleware([cache({ ...SETTINGS, ...settings }, 'unit')], servingCachedHits((context) => {
      methods.push(context.upstream.method);
      return upstream.proxy(context);
    }));
    const head = await server.send('/a', { method: 'HEAD', headers });
    expect([head.status, head.headers['x-cache-status'], head.body.toString()]).toEqual([200, status, '']);
    const next = await server.send('/a');
    const stored = sentAs === 'GET';
    expect(next.body.toString()).toBe(stored ? 'answer 1' : 'answer 2');
    expect(methods).toEqual(stored ? ['GET'] : ['HEAD', 'GET']);
  });

  it('gives an answer without explicit freshness defaultTtl when set, and keeps it', async () => {
    const upstream = countingUpstream(200, {});
    server = await serveMiddleware([cache({ ...SETTINGS, defaultTtlMs: 60_000 }, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    await server.send('/a');
    const second = await server.send('/a');
    expect(upstream.calls).toBe(1);
    expect(second.headers['x-cache-status']).toBe('HIT');
    expect(second.headers['cache-control']).toBeUndefined();
  });

  it('keeps no answer whose body is over maxEntrySize, and sends all of it', async () => {
    const big = 'x'.repeat(2_000);
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60' }, big);
    server = await serveMiddleware([cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    expect((await server.send('/a')).body.toString()).toBe(`${big} 1`);
    expect((await server.send('/a')).body.toString()).toBe(`${big} 2`);
    expect(upstream.calls).toBe(2);
  });

  it('keeps no copy that would take the copies of the answers in flight together past maxSize, and streams every answer whole', async () => {
    const half = 'x'.repeat(2_100);
    /** Per step of a held answer (`/a second`, `/a end`): the upstream goes on once the test opens it, and says when that step is written. */
    const gates = new Map<string, { go: () => void; written: Promise<void> }>();
    let holding = true;
    let calls = 0;
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const step = (name: string, write: () => void) => {
      let go!: () => void;
      let written!: () => void;
      gates.set(name, { go: () => go(), written: new Promise<void>((resolve) => (written = resolve)) });
      // One turn of the event loop after the write: the pass-through has handed the chunk to the tap.
      return new Promise<void>((resolve) => (go = resolve)).then(write).then(turn).then(written);
    };
    const heldUpstream = async (context: GatewayContext) => {
      calls += 1;
      // Chunked: the client waits for the end, which comes only when the test opens it.
      const outgoing = applyHeaderHooks(context, 200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      context.outcome = { status: 200, attempts: 1, upstream: '127.0.0.1:1', bytesOut: 0 };
      const sink = startResponseBody(context, 200, outgoing);
      if (!holding) return void sink.end(half + half);
      const path = context.upstream.path;
      sink.write(half);
      await turn();
      await step(`${path} second`, () => sink.write(half));
      await step(`${path} end`, () => sink.end());
    };
    const open = async (name: string) => {
      const gate = await waitFor(() => gates.get(name), { message: `the upstream waits at ${name}` });
      gate.go();
      await gate.written;
    };
    // Room for one answer of 4,200 bytes (with its key, headers and bookkeeping), not two.
    server = await serveMiddleware([cache({ ...SETTINGS, maxBytes: 6_000, maxEntryBytes: 6_000 }, 'unit')], servingCachedHits(heldUpstream));
    const a = server.send('/a');
    const b = server.send('/b');
    // Both first halves are in flight (4,200 bytes): /a's second half would make 6,300. The two
    // requests reach the upstream in either order and some time apart (a loaded machine): /a's
    // second half let go before /b's first would make 4,200 and be kept, and /b's copy dropped.
    await waitFor(() => gates.has('/a second') && gates.has('/b second'), { message: 'both upstreams hold their first halves' });
    await open('/a second');
    await open('/b second');
    await open('/b end');
    expect((await b).body.toString()).toBe(half + half);
    await open('/a end');
    expect((await a).body.toString()).toBe(half + half);
    holding = false;
    // /b is there; /a kept no copy (stored, it would have pushed /b out) and goes upstream again.
    expect((await server.send('/b')).headers['x-cache-status']).toBe('HIT');
    expect((await server.send('/a')).headers['x-cache-status']).toBe('MISS');
    expect(calls).toBe(3);
  });

  it('keys by host and by path with query', async () => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60' });
    server = await serveMiddleware([cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    await server.send('/a?x=1', { headers: { host: 'one.example' } });
    await server.send('/a?x=2', { headers: { host: 'one.example' } });
    await server.send('/a?x=1', { headers: { host: 'two.example' } });
    expect(upstream.calls).toBe(3);
    expect((await server.send('/a?x=1', { headers: { host: 'ONE.example' } })).body.toString()).toBe('answer 1');
    expect(upstream.calls).toBe(3);
  });

  it('keeps the answers of each identified consumer apart', async () => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60' });
    const identifyByHeader = async (context: GatewayContext, next: () => Promise<void>) => {
      const name = context.request.headers['x-who'];
      if (typeof name === 'string') context.set('consumer', { name } as ConsumerConfig);
      await next();
    };
    server = await serveMiddleware([identifyByHeader, cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    await server.send('/a', { headers: { 'x-who': 'alice' } });
    const bob = await server.send('/a', { headers: { 'x-who': 'bob' } });
    expect(bob.body.toString()).toBe('answer 2');
    expect((await server.send('/a', { headers: { 'x-who': 'alice' } })).body.toString()).toBe('answer 1');
    expect((await server.send('/a')).body.toString()).toBe('answer 3');
    expect(upstream.calls).toBe(3);
  });

  it('keeps Vary variants apart and finds each again', async () => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
    server = await serveMiddleware([cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    const en = await server.send('/a', { headers: { 'accept-language': 'en' } });
    const fr = await server.send('/a', { headers: { 'accept-language': 'fr' } });
    expect(en.body.toString()).toBe('answer 1');
    expect(fr.body.toString()).toBe('answer 2');
    expect((await server.send('/a', { headers: { 'accept-language': 'en' } })).body.toString()).toBe('answer 1');
    expect((await server.send('/a', { headers: { 'accept-language': 'fr' } })).body.toString()).toBe('answer 2');
    expect(upstream.calls).toBe(2);
  });

  it('runs the request\'s own response header hooks on a hit, not the stored request\'s', async () => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=60' });
    let n = 0;
    const tagger = async (context: GatewayContext, next: () => Promise<void>) => {
      const tag = String((n += 1));
      context.responseHeaderHooks.push((_status, headers) => (headers['x-request-tag'] = tag));
      await next();
    };
    server = await serveMiddleware([tagger, cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    expect((await server.send('/a')).headers['x-request-tag']).toBe('1');
    const hit = await server.send('/a');
    expect(hit.headers['x-cache-status']).toBe('HIT');
    expect(hit.headers['x-request-tag']).toBe('2');
  });
});

/** The Last-Modified of the validating upstream's resource at `version`: a day later each. */
const lastModifiedOf = (version: number) => new Date(Date.UTC(2025, 0, version, 10)).toUTCString();
const LAST_MODIFIED = lastModifiedOf(1);

/**
 * What the transports do with an upstream answer: the request's `answerReplacer` first (an answer
 * it returns goes whole in this one's place), then the hooks and `startResponseBody`, the body in two chunks.
 */
function answerAsTransport(context: GatewayContext, status: number, upstreamHeaders: OutgoingHttpHeaders, body: Buffer): void {
  const replacement = context.answerReplacer?.(status, upstreamHeaders);
  const outgoing = applyHeaderHooks(context, replacement?.status ?? status, replacement?.headers ?? upstreamHeaders);
  Object.assign(context.outcome, { status: replacement?.status ?? status, attempts: 1, upstream: '127.0.0.1:1' });
  if (replacement !== undefined) return void sendReplacement(context, replacement.status, outgoing, replacement.body).end();
  const sink = startResponseBody(context, status, outgoing);
  sink.write(body.subarray(0, 3));
  sink.end(body.subarray(3));
}

/**
 * An upstream whose resource is at `version` (ETag `"v<version>"` and `lastModifiedOf(version)`, or
 * only one of them), answering 304 with `notModified` headers to a request whose If-None-Match is
 * its ETag or whose If-Modified-Since is its Last-Modified, else 200 with `headers`; it keeps the
 * headers and the method of every request it got.
 */
function validatingUpstream(headers: OutgoingHttpHeaders, notModified: OutgoingHttpHeaders, validators: 'etag' | 'last-modified' | 'both' = 'both') {
  const upstream = {
    requests: [] as IncomingHttpHeaders[],
    /** The method of each request it got. */
    methods: [] as string[],
    version: 1,
    async proxy(context: GatewayContext): Promise<void> {
      const asked = { ...context.upstream.headers };
      upstream.requests.push(asked);
      upstream.methods.push(context.upstream.method);
      const etag = `"v${upstream.version}"`;
      const own: OutgoingHttpHeaders = {};
      if (validators !== 'last-modified') own.etag = etag;
      if (validators !== 'etag') own['last-modified'] = lastModifiedOf(upstream.version);
      const unchanged = (own.etag !== undefined && asked['if-none-match'] === etag) || (own['last-modified'] !== undefined && asked['if-modified-since'] === own['last-modified']);
      if (unchanged) return answerAsTransport(context, 304, { ...own, ...notModified }, Buffer.alloc(0));
      answerAsTransport(context, 200, { 'content-type': 'text/plain', ...own, ...headers }, Buffer.from(`version ${upstream.version}, request ${upstream.requests.length}`));
    },
  };
  return upstream;
}

describe('cache: revalidation and conditional requests', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    await server?.close();
    server = undefined;
  });

  /** Serves `upstream` behind a cache, with http-cache-semantics' clock (Date) in the test's hands. */
  const serve = async (upstream: { proxy(context: GatewayContext): Promise<void> }, settings: Partial<CacheSettings> = {}) => {
    vi.useFakeTimers({ toFake: ['Date'] });
    server = await serveMiddleware([cache({ ...SETTINGS, ...settings }, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    return server;
  };
  const later = (ms: number) => vi.setSystemTime(Date.now() + ms);

  it.each([
    ['its ETag', 'etag', { 'if-none-match': '"v1"' }],
    ['its Last-Modified when it has no ETag', 'last-modified', { 'if-modified-since': LAST_MODIFIED }],
  ] as const)('revalidates a stale answer with %s: a 304 sends the stored answer (REVALIDATED), fresh again as the 304 says', async (_what, validators, conditional) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60', 'x-from': '304' }, validators);
    const { send } = await serve(upstream);
    const first = await send('/a');
    expect(first.headers['x-cache-status']).toBe('MISS');
    later(2_000);
    const revalidated = await send('/a');
    expect(upstream.requests[1]).toMatchObject(conditional);
    expect(revalidated.status).toBe(200);
    expect(revalidated.headers['x-cache-status']).toBe('REVALIDATED');
    expect(revalidated.body.toString()).toBe('version 1, request 1');
    expect(revalidated.headers['content-length']).toBe(String(first.body.length));
    expect(revalidated.headers['content-type']).toBe('text/plain');
    expect(revalidated.headers['cache-control']).toBe('max-age=60');
    expect(revalidated.headers['x-from']).toBe('304');
    expect(revalidated.headers.age).toBe('0');
    later(30_000);
    const hit = await send('/a');
    expect(hit.headers['x-cache-status']).toBe('HIT');
    expect(hit.headers['cache-control']).toBe('max-age=60');
    expect(hit.body.toString()).toBe('version 1, request 1');
    expect(upstream.requests).toHaveLength(2);
  });

  it('stores an answer a 200 to the revalidation brings in the stale one\'s place (EXPIRED)', async () => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream);
    await send('/a');
    later(2_000);
    upstream.version = 2;
    const changed = await send('/a');
    expect(upstream.requests[1]!['if-none-match']).toBe('"v1"');
    expect(changed.headers['x-cache-status']).toBe('EXPIRED');
    expect(changed.headers.etag).toBe('"v2"');
    expect(changed.body.toString()).toBe('version 2, request 2');
    const hit = await send('/a');
    expect(hit.headers['x-cache-status']).toBe('HIT');
    expect(hit.body.toString()).toBe('version 2, request 2');
    expect(upstream.requests).toHaveLength(2);
  });

  it('keeps defaultTtl for an answer a 304 freshens without a lifetime of its own', async () => {
    const upstream = validatingUpstream({}, {}, 'etag');
    const { send } = await serve(upstream, { defaultTtlMs: 1_000 });
    await send('/a');
    later(2_000);
    expect((await send('/a')).headers['x-cache-status']).toBe('REVALIDATED');
    expect((await send('/a')).headers['x-cache-status']).toBe('HIT');
    later(2_000);
    expect((await send('/a')).headers['x-cache-status']).toBe('REVALIDATED');
    expect(upstream.requests).toHaveLength(3);
  });

  it.each([
    ['a Set-Cookie (never stored)', { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, 'etag', { 'set-cookie': ['a=b'] }],
    ['an ETag that is not the stored one', { 'cache-control': 'max-age=60', etag: '"other"' }, 'etag', { etag: '"v1"' }],
  ] as const)('sends the stored answer for a 304 with %s, and forgets it', async (_what, notModified, validators, seen) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, notModified, validators);
    const { send } = await serve(upstream);
    await send('/a');
    later(2_000);
    const revalidated = await send('/a');
    expect(revalidated.headers['x-cache-status']).toBe('REVALIDATED');
    expect(revalidated.body.toString()).toBe('version 1, request 1');
    expect(revalidated.headers).toMatchObject(seen);
    const next = await send('/a');
    expect(next.headers['x-cache-status']).toBe('MISS');
    expect(upstream.requests[2]!['if-none-match']).toBeUndefined();
  });

  it.each([
    ['an If-None-Match with the stored ETag', { 'if-none-match': '"v1"' }],
    ['an If-Modified-Since at the stored Last-Modified', { 'if-modified-since': LAST_MODIFIED }],
  ] as const)('revalidates a stale answer for a client\'s conditional request it meets with its own validators: the 304 is the client\'s, the entry fresh again (REVALIDATED): %s', async (_what, conditional) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream);
    await send('/a');
    later(2_000);
    const answer = await send('/a', { headers: conditional });
    expect(upstream.requests[1]).toMatchObject({ 'if-none-match': '"v1"', 'if-modified-since': LAST_MODIFIED });
    expect([answer.status, answer.headers['x-cache-status'], answer.body.length]).toEqual([304, 'REVALIDATED', 0]);
    expect(answer.headers).toMatchObject({ etag: '"v1"', 'cache-control': 'max-age=60', age: '0' });
    expect(answer.headers['content-length']).toBeUndefined();
    const again = await send('/a', { headers: conditional });
    expect([again.status, again.headers['x-cache-status']]).toEqual([304, 'HIT']);
    expect(upstream.requests).toHaveLength(2);
  });

  it('sends the changed answer to a client\'s conditional request the stale one met, and stores it (EXPIRED)', async () => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream);
    await send('/a');
    later(2_000);
    upstream.version = 2;
    const answer = await send('/a', { headers: { 'if-none-match': '"v1"' } });
    expect([answer.status, answer.headers['x-cache-status'], answer.body.toString()]).toEqual([200, 'EXPIRED', 'version 2, request 2']);
    expect((await send('/a', { headers: { 'if-none-match': '"v2"' } })).status).toBe(304);
    expect(upstream.requests).toHaveLength(2);
  });

  it.each([
    ['an If-None-Match that the stored answer does not meet', { 'if-none-match': '"v0"' }, 200],
    ['an If-Modified-Since before its Last-Modified', { 'if-modified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 200],
    ['If-None-Match: *', { 'if-none-match': '*' }, 304],
    ['an If-Match beside an If-None-Match the stored answer meets (the If-Match judged by the gateway)', { 'if-none-match': '"v1"', 'if-match': '"v1"' }, 304],
    // The upstream is not asked the client's If-Match: its 304 to the cache's validators leaves it to the gateway, judged before the 304.
    ['an If-Match with another ETag beside an If-None-Match the stored answer meets', { 'if-none-match': '"v1"', 'if-match': '"v0"' }, 412],
  ] as const)('revalidates a stale answer with its own validators for any conditional GET, judging the client\'s on the stored answer (REVALIDATED): %s', async (_what, conditional, status) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream);
    await send('/a');
    later(2_000);
    const answer = await send('/a', { headers: conditional });
    expect(upstream.requests[1]!['if-none-match']).toBe('"v1"');
    expect(upstream.requests[1]!['if-match']).toBeUndefined();
    expect([answer.status, answer.headers['x-cache-status'], answer.body.toString()]).toEqual([status, 'REVALIDATED', status === 200 ? 'version 1, request 1' : '']);
    expect((await send('/a')).headers['x-cache-status']).toBe('HIT');
  });

  it('ignores an If-Unmodified-Since on a hit whose stored answer has no Last-Modified (RFC 9110 §13.1.4): its Range gets the part', async () => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60' }, {}, 'etag');
    const { send } = await serve(upstream);
    await send('/a');
    const part = await send('/a', { headers: { range: 'bytes=0-6', 'if-unmodified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' } });
    expect([part.status, part.headers['x-cache-status'], part.body.toString()]).toEqual([206, 'HIT', 'version']);
  });

  it.each([
    ['an If-None-Match that the stored answer does not meet', { 'if-none-match': '"v0"' }, 200],
    ['If-None-Match: *, which this upstream never meets', { 'if-none-match': '*' }, 200],
  ] as const)('passes the conditionals of a HEAD not converted to a GET for a stale answer, which stores nothing, on as they are (EXPIRED): %s', async (_what, conditional, status) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=1' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream, { convertHead: false });
    await send('/a');
    later(2_000);
    const answer = await send('/a', { method: 'HEAD', headers: conditional });
    expect(upstream.requests[1]!['if-none-match']).toBe(conditional['if-none-match']);
    expect(upstream.requests[1]!['if-modified-since']).toBeUndefined();
    expect([answer.status, answer.headers['x-cache-status']]).toEqual([status, 'EXPIRED']);
  });

  it.each([
    ['If-None-Match with its ETag made weak, among others', 'GET', { 'if-none-match': '"v0", W/"v1"' }, 304, true],
    ['If-None-Match: *', 'GET', { 'if-none-match': '*' }, 304, true],
    ['If-Modified-Since at its Last-Modified', 'GET', { 'if-modified-since': LAST_MODIFIED }, 304, true],
    ['If-Modified-Since at its Last-Modified with an If-None-Match that fails', 'GET', { 'if-none-match': '"v0"', 'if-modified-since': LAST_MODIFIED }, 200, true],
    ['If-None-Match with another ETag', 'GET', { 'if-none-match': '"v0"' }, 200, true],
    ['If-None-Match with its ETag and a Range (the 304 comes first)', 'GET', { 'if-none-match': '"v1"', range: 'bytes=0-1' }, 304, true],
    ['If-None-Match with its ETag, asking no-store (passed on as it is)', 'GET', { 'if-none-match': '"v1"', 'cache-control': 'no-store' }, 304, false],
    ['a HEAD with If-None-Match with its ETag (converted to a GET)', 'HEAD', { 'if-none-match': '"v1"' }, 304, true],
    ['a HEAD with If-None-Match with another ETag (converted to a GET)', 'HEAD', { 'if-none-match': '"v0"' }, 200, true],
    ['a HEAD with If-None-Match with its ETag, convertHead: false (passed on as it is)', 'HEAD', { 'if-none-match': '"v1"' }, 304, false, { convertHead: false }],
    ['If-Match with another ETag (a 412, the answer stored)', 'GET', { 'if-match': '"v0"' }, 412, true],
    ['If-Match with another ETag beside an If-None-Match it meets (the 412 comes first)', 'GET', { 'if-match': '"v0"', 'if-none-match': '"v1"' }, 412, true],
    ['If-Match with another ETag and a Range (the 412 comes first)', 'GET', { 'if-match': '"v0"', range: 'bytes=0-1' }, 412, true],
    ['If-Unmodified-Since before its Last-Modified', 'GET', { 'if-unmodified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 412, true],
    ['If-Match with its ETag (the whole answer)', 'GET', { 'if-match': '"v1"' }, 200, true],
  ] as const)('fills its entry from a miss with %s, the gateway judging the client\'s validators on the fetched answer', async (_what, method, conditional, status, judged, settings: Partial<CacheSettings> = {}) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60', 'x-upstream': 'yes' }, { 'cache-control': 'max-age=60' });
    const { send } = await serve(upstream, settings);
    const answer = await send('/a', { method, headers: conditional });
    expect(upstream.requests[0]!['if-none-match']).toBe(judged ? undefined : conditional['if-none-match']);
    expect(upstream.requests[0]!['if-modified-since']).toBeUndefined();
    expect(upstream.requests[0]!['if-match']).toBeUndefined();
    expect(upstream.requests[0]!['if-unmodified-since']).toBeUndefined();
    expect(upstream.requests[0]!.range).toBeUndefined();
    expect(upstream.methods[0]).toBe(judged ? 'GET' : method);
    expect([answer.status, answer.headers['x-cache-status'], answer.body.toString()]).toEqual([status, 'cache-control' in conditional ? 'BYPASS' : 'MISS', status === 200 && method === 'GET' ? 'version 1, request 1' : '']);
    if (status === 304) {
      // A 304's headers as one from memory has them: its validators and freshness, not the upstream's others nor those of a body.
      expect(answer.headers).toMatchObject({ etag: '"v1"', 'last-modified': LAST_MODIFIED, 'cache-control': 'max-age=60' });
      for (const name of ['content-type', 'content-length', 'x-upstream', 'accept-ranges']) expect(answer.headers[name]).toBeUndefined();
    }
    if (status === 412) {
      // None of the upstream's headers: its validators and freshness would let a cache downstream keep the error.
      for (const name of ['etag', 'last-modified', 'cache-control', 'content-type', 'x-upstream', 'accept-ranges', 'content-range']) expect(answer.headers[name]).toBeUndefined();
      expect(answer.headers['content-length']).toBe('0');
    }
    const next = await send('/a');
    expect([next.headers['x-cache-status'], next.body.toString()]).toEqual(judged ? ['HIT', 'version 1, request 1'] : ['MISS', 'version 1, request 2']);
  });

  it.each([
    ['412', { 'if-match': '"v0"' }, 412, undefined],
    ['304', { 'if-none-match': '"v1"' }, 304, '"v1"'],
  ] as const)('keeps on a fetched answer\'s %s the request id its upstream echoed, as one from memory has it', async (_what, conditional, status, etag) => {
    // The upstream sends back the id it was given (many do): the request id hook sets the same value over it.
    const upstream = {
      async proxy(context: GatewayContext): Promise<void> {
        const id = context.upstream.headers['x-request-id'];
        answerAsTransport(context, 200, { 'content-type': 'text/plain', etag: '"v1"', 'cache-control': 'max-age=60', 'x-request-id': id }, Buffer.from('version 1'));
      },
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    server = await serveMiddleware([requestId(), cache(SETTINGS, 'unit')], servingCachedHits((context) => upstream.proxy(context)));
    const fetched = await server.send('/a', { headers: { ...conditional, 'x-request-id': 'fetched-1' } });
    expect([fetched.status, fetched.headers['x-cache-status'], fetched.headers['x-request-id'], fetched.headers.etag]).toEqual([status, 'MISS', 'fetched-1', etag]);
    const hit = await server.send('/a', { headers: { ...conditional, 'x-request-id': 'hit-1' } });
    expect([hit.status, hit.headers['x-cache-status'], hit.headers['x-request-id']]).toEqual([status, 'HIT', 'hit-1']);
  });

  it('answers a miss whose answer will not be stored (Set-Cookie) with a 304 to the client\'s validators it met, its body wanted by nobody', async () => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }, {});
    const { send } = await serve(upstream);
    const answer = await send('/a', { headers: { 'if-none-match': '"v1"' } });
    expect(upstream.requests[0]!['if-none-match']).toBeUndefined();
    expect([answer.status, answer.headers['x-cache-status'], answer.body.length]).toEqual([304, 'MISS', 0]);
    expect((await send('/a')).headers['x-cache-status']).toBe('MISS');
  });

  it('keeps the upstream\'s Set-Cookie on the 304 it makes of an answer that will not be stored, as the upstream\'s own 304 would carry it', async () => {
    // A session cookie renewed on every answer: a client revalidating its copy must still get it.
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60', 'set-cookie': 'session=renewed; Path=/' }, {});
    const { send } = await serve(upstream);
    const answer = await send('/a', { headers: { 'if-none-match': '"v1"' } });
    expect([answer.status, answer.headers['x-cache-status']]).toEqual([304, 'MISS']);
    expect(answer.headers['set-cookie']).toEqual(['session=renewed; Path=/']);
  });

  it('keeps on the 304 it makes of a fetched answer the headers the response header hooks set over the upstream\'s own (its X-Cache-Status over a cache behind it)', async () => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60', 'x-cache-status': 'HIT' }, {});
    const { send } = await serve(upstream);
    const answer = await send('/a', { headers: { 'if-none-match': '"v1"' } });
    expect([answer.status, answer.headers['x-cache-status']]).toEqual([304, 'MISS']);
    // As on a 304 from memory.
    const hit = await send('/a', { headers: { 'if-none-match': '"v1"' } });
    expect([hit.status, hit.headers['x-cache-status']]).toEqual([304, 'HIT']);
  });

  it('sends a stale answer without validators upstream with no conditional of its own (EXPIRED)', async () => {
    const upstream = countingUpstream(200, { 'cache-control': 'max-age=1' });
    const seen: IncomingHttpHeaders[] = [];
    const { send } = await serve({ proxy: (context) => (seen.push({ ...context.upstream.headers }), upstream.proxy(context)) });
    await send('/a');
    later(2_000);
    const expired = await send('/a');
    expect(expired.headers['x-cache-status']).toBe('EXPIRED');
    expect(expired.body.toString()).toBe('answer 2');
    expect(seen[1]!['if-none-match']).toBeUndefined();
    expect(seen[1]!['if-modified-since']).toBeUndefined();
  });

  it.each([
    ['If-None-Match with the ETag', 'GET', { 'if-none-match': '"v1"' }, 304],
    ['If-None-Match with the ETag made weak, among others', 'GET', { 'if-none-match': '"v0", W/"v1"' }, 304],
    ['If-None-Match: *', 'GET', { 'if-none-match': '*' }, 304],
    ['If-None-Match with another ETag', 'GET', { 'if-none-match': '"v0"' }, 200],
    ['If-Modified-Since at Last-Modified', 'GET', { 'if-modified-since': LAST_MODIFIED }, 304],
    ['If-Modified-Since before Last-Modified', 'GET', { 'if-modified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 200],
    ['If-Modified-Since at Last-Modified with an If-None-Match that fails', 'GET', { 'if-none-match': '"v0"', 'if-modified-since': LAST_MODIFIED }, 200],
    ['a HEAD with If-None-Match with the ETag', 'HEAD', { 'if-none-match': '"v1"' }, 304],
    // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since come before If-None-Match and If-Modified-Since.
    ['If-Match with the ETag', 'GET', { 'if-match': '"v1"' }, 200],
    ['If-Match with the ETag among others, beside an If-None-Match it meets', 'GET', { 'if-match': '"v0", "v1"', 'if-none-match': '"v1"' }, 304],
    ['If-Match: *', 'GET', { 'if-match': '*' }, 200],
    ['If-Match with another ETag, beside an If-None-Match it meets', 'GET', { 'if-match': '"v0"', 'if-none-match': '"v1"' }, 412],
    ['If-Match with the ETag made weak (strong comparison)', 'GET', { 'if-match': 'W/"v1"' }, 412],
    ['a HEAD with If-Match with another ETag', 'HEAD', { 'if-match': '"v0"' }, 412],
    ['If-Unmodified-Since before Last-Modified', 'GET', { 'if-unmodified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 412],
    ['If-Unmodified-Since before Last-Modified, beside an If-Match with the ETag (which wins)', 'GET', { 'if-match': '"v1"', 'if-unmodified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 200],
    ['If-Unmodified-Since at Last-Modified, beside an If-Modified-Since it meets', 'GET', { 'if-unmodified-since': LAST_MODIFIED, 'if-modified-since': LAST_MODIFIED }, 304],
    ['If-Unmodified-Since that is no HTTP-date (ignored)', 'GET', { 'if-unmodified-since': '2024-12-31' }, 200],
  ] as const)('answers a fresh hit for a request with %s from memory', async (_what, method, conditional, status) => {
    const upstream = validatingUpstream({ 'cache-control': 'max-age=60', vary: 'Accept', expires: 'Wed, 01 Jan 2025 11:00:00 GMT' }, {});
    const { send } = await serve(upstream);
    const first = await send('/a');
    const answer = await send('/a', { method, headers: conditional });
    expect(upstream.requests).toHaveLength(1);
    expect(answer.status).toBe(status);
    expect(answer.headers['x-cache-status']).toBe('HIT');
    if (status === 200) return void expect(answer.body.toString()).toBe(first.body.toString());
    if (status === 412) {
      // An error answer: no body, and none of the stored answer's validators or freshness (nginx's 412 drops them; a cache downstream must not keep it).
      expect([answer.body.length, answer.headers['content-length']]).toEqual([0, '0']);
      for (const name of ['etag', 'last-modified', 'cache-control', 'expires', 'content-type']) expect(answer.headers[name]).toBeUndefined();
      return;
    }
    expect(answer.body.length).toBe(0);
    expect(answer.headers).toMatchObject({ etag: '"v1"', 'last-modified': LAST_MODIFIED, 'cache-control': 'max-age=60', vary: 'Accept', expires: 'Wed, 01 Jan 2025 11:00:00 GMT', age: '0' });
    expect(answer.headers['content-type']).toBeUndefined();
    expect(answer.headers['content-length']).toBeUndefined();
  });
});

describe('variantKey', () => {
  it('tells an absent header from an empty one, and reads only the names given', () => {
    expect(variantKey({}, ['accept-encoding'])).not.toBe(variantKey({ 'accept-encoding': '' }, ['accept-encoding']));
    expect(variantKey({ 'accept-encoding': 'gzip', cookie: 'a' }, ['accept-encoding'])).toBe(variantKey({ 'accept-encoding': 'gzip', cookie: 'b' }, ['accept-encoding']));
    expect(varyNames('Accept-Encoding, origin ,accept-encoding')).toEqual(['accept-encoding', 'origin']);
  });
});
