import type { OutgoingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheSettings, ConsumerConfig } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';
import { startResponseBody } from '../../transports/transport-response-body.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { cache, servingCachedHits, variantKey, varyNames } from './index.ts';

const SETTINGS: CacheSettings = {
  maxBytes: 1_048_576,
  maxEntryBytes: 1_024,
  defaultTtlMs: undefined,
  methods: ['GET', 'HEAD'],
  statuses: [200, 203, 204, 300, 301, 404, 410],
  cacheStatusHeader: 'x-cache-status',
};

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
    // Both first halves are in flight (4,200 bytes): /a's second half would make 6,300.
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

describe('variantKey', () => {
  it('tells an absent header from an empty one, and reads only the names given', () => {
    expect(variantKey({}, ['accept-encoding'])).not.toBe(variantKey({ 'accept-encoding': '' }, ['accept-encoding']));
    expect(variantKey({ 'accept-encoding': 'gzip', cookie: 'a' }, ['accept-encoding'])).toBe(variantKey({ 'accept-encoding': 'gzip', cookie: 'b' }, ['accept-encoding']));
    expect(varyNames('Accept-Encoding, origin ,accept-encoding')).toEqual(['accept-encoding', 'origin']);
  });
});
