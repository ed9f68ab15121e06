import { Agent, createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../../test/harness/wait.ts';
import type { CacheSettings, CompressSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { createProxy } from '../../proxy/proxy.ts';
import { singleInstanceBalancer, TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { UpstreamTransports } from '../../transports/index.ts';
import { accessLogText } from '../access-log/index.ts';
import { RespondFileBody } from '../../config/respond-files.ts';
import { compress } from '../compress/index.ts';
import { errors } from '../errors/index.ts';
import { serveMiddleware } from '../middleware-testing.ts';
import { ifRangeHolds, notModifiedTap, requestedPart } from './cache-range.ts';
import { CACHE_TEST_SETTINGS } from './cache-testing.ts';
import { cache, servingCachedHits } from './index.ts';

describe('requestedPart', () => {
  it.each([
    ['a first and last byte', 'bytes=2-5', { first: 2, last: 5 }],
    ['one byte', 'bytes=0-0', { first: 0, last: 0 }],
    ['an open end', 'bytes=20-', { first: 20, last: 25 }],
    ['a last byte past the end (clamped)', 'bytes=20-99', { first: 20, last: 25 }],
    ['a last byte with more digits than any number holds (clamped)', `bytes=3-${'9'.repeat(400)}`, { first: 3, last: 25 }],
    ['a suffix', 'bytes=-4', { first: 22, last: 25 }],
    ['a suffix longer than the body (all of it)', 'bytes=-100', { first: 0, last: 25 }],
    ['the unit in capitals', 'BYTES=1-2', { first: 1, last: 2 }],
    ['spaces around the range and an empty list element', 'bytes= 1-2 ,', { first: 1, last: 2 }],
    ['a first byte at the end', 'bytes=26-', 'unsatisfiable'],
    ['a first byte past the end', 'bytes=30-40', 'unsatisfiable'],
    ['a first byte with more digits than any number holds', `bytes=${'9'.repeat(400)}-`, 'unsatisfiable'],
    ['a suffix of zero bytes', 'bytes=-0', 'unsatisfiable'],
    ['a last byte before the first', 'bytes=5-2', undefined],
    ['a last byte before the first, both past what a number holds exactly', 'bytes=9007199254740993-9007199254740992', undefined],
    ['a last byte before the first, with leading zeros', 'bytes=0010-009', undefined],
    ['a first and last byte with leading zeros', 'bytes=002-0005', { first: 2, last: 5 }],
    ['no range at all', 'bytes=', undefined],
    ['a lone dash', 'bytes=-', undefined],
    ['a negative first byte', 'bytes=--2', undefined],
    ['words', 'bytes=one-two', undefined],
    ['another unit', 'items=0-5', undefined],
    ['no unit', '0-5', undefined],
    ['two ranges', 'bytes=0-1,4-5', undefined],
    ['many overlapping ranges (CVE-2011-3192)', `bytes=${Array.from({ length: 1_000 }, (_, i) => `0-${i}`).join(',')}`, undefined],
  ] as const)('reads %s on 26 bytes', (_what, range, expected) => {
    expect(requestedPart(range, 26)).toEqual(expected);
  });

  it('ignores any range of an empty body', () => {
    expect(requestedPart('bytes=0-', 0)).toBeUndefined();
    expect(requestedPart('bytes=-5', 0)).toBeUndefined();
  });
});

const LAST_MODIFIED = 'Wed, 01 Jan 2025 10:00:00 GMT';
/** A Date a second after `LAST_MODIFIED`: that Last-Modified is a strong validator (RFC 9110 §8.8.2.2). */
const DATED = { date: 'Wed, 01 Jan 2025 10:00:01 GMT', 'last-modified': LAST_MODIFIED };

describe('notModifiedTap', () => {
  it.each([
    ['declared within the bound', '1024', [1024], [true]],
    ['declared past the bound (left unread at once)', '1025', [], []],
    ['of unknown length, until more than the bound has come', undefined, [600, 424, 1], [true, true, false]],
  ] as const)('reads on the body of an answer not to be stored while it is small: one %s', (_what, contentLength, chunks, keptAfter) => {
    const headers: OutgoingHttpHeaders = { etag: '"v1"', 'content-type': 'text/plain', ...(contentLength === undefined ? {} : { 'content-length': contentLength }) };
    const tap = notModifiedTap(undefined, headers, { ...headers }, { responseHeaderHooks: [] } as unknown as GatewayContext, 1024);
    expect(tap.part).toEqual({ status: 304, start: 0, end: 0, length: contentLength === undefined ? Number.POSITIVE_INFINITY : Number(contentLength) });
    expect(headers).toEqual({ etag: '"v1"' });
    expect(tap.keeping?.()).toBe(Number(contentLength ?? 0) <= 1024);
    expect(chunks.map((size) => (tap.chunk(Buffer.alloc(size)), tap.keeping?.()))).toEqual(keptAfter);
  });
});

describe('ifRangeHolds', () => {
  it.each([
    ['the stored strong ETag', '"v1"', { etag: '"v1"' }, true],
    ['another ETag', '"v2"', { etag: '"v1"' }, false],
    ['the stored ETag made weak (strong comparison)', 'W/"v1"', { etag: '"v1"' }, false],
    ['a weak ETag equal to a weak stored one (strong comparison)', 'W/"v1"', { etag: 'W/"v1"' }, false],
    ['a strong ETag for a weak stored one', '"v1"', { etag: 'W/"v1"' }, false],
    ['an ETag for an answer without one', '"v1"', DATED, false],
    ['the stored Last-Modified', LAST_MODIFIED, DATED, true],
    ['the stored Last-Modified in the obsolete asctime form', 'Wed Jan  1 10:00:00 2025', DATED, true],
    ['a date after the stored Last-Modified (only an equal one holds)', 'Thu, 02 Jan 2025 10:00:00 GMT', DATED, false],
    ['a date for an answer without Last-Modified', LAST_MODIFIED, { etag: '"v1"', date: DATED.date }, false],
    ['a date that is no HTTP-date', '2025-01-01T10:00:00Z', DATED, false],
    // The representation may have changed twice within that second (a file still being written): its bytes may not be those the client holds.
    ['the stored Last-Modified of an answer dated in the same second (a weak validator)', LAST_MODIFIED, { date: 'Wed, 01 Jan 2025 10:00:00 GMT', 'last-modified': LAST_MODIFIED }, false],
    ['the stored Last-Modified of an answer dated before it', LAST_MODIFIED, { date: 'Wed, 01 Jan 2025 09:00:00 GMT', 'last-modified': LAST_MODIFIED }, false],
    ['the stored Last-Modified of an answer without Date', LAST_MODIFIED, { 'last-modified': LAST_MODIFIED }, false],
  ] as const)('%s: %s', (_what, ifRange, stored, expected) => {
    expect(ifRangeHolds(ifRange, stored)).toBe(expected);
  });
});

const BODY = 'abcdefghijklmnopqrstuvwxyz';
/** A body past `maxEntryBytes` (1 KiB): each byte its offset's last digit. */
const BIG = Array.from({ length: 2_000 }, (_, i) => String(i % 10)).join('');

/** What `/slow?<name>` adds to its answer's head: each makes an answer that will not be stored. */
const SLOW_HEADERS: Record<string, OutgoingHttpHeaders> = {
  'too-long': {},
  'no-store': { 'cache-control': 'no-store' },
  private: { 'cache-control': 'private, max-age=60' },
  'set-cookie': { 'set-cookie': 'session=1' },
};
/** The length `/slow` announces: past `maxEntryBytes`, of which it sends only the first 100 bytes. */
const SLOW_LENGTH = 10_000_000;

const SETTINGS: CacheSettings = { ...CACHE_TEST_SETTINGS, statuses: [200, 404], useStale: { on: ['http_503'], maxStaleMs: 86_400_000, answerDirectives: true } };

const GZIP: CompressSettings = { encodings: ['gzip'], minBytes: 0, contentTypes: ['text/*'], excludedContentTypes: undefined, level: 6 };

/**
 * A cache (after `before`) in front of the real proxy and HTTP/1.1 transport to a real backend that
 * answers `BODY` as 200 (ETag `"v1"`, `LAST_MODIFIED`, `headers`), a 304 to `If-None-Match: "v1"`,
 * a 503 while `state.failing`, a 404 for `/missing`, and a `Range` with a 206 of its own while
 * `state.ranges`; http-cache-semantics' clock (Date) is in the test's hands.
 */
async function rangeSetup(headers: OutgoingHttpHeaders = { 'cache-control': 'max-age=60' }, before: Middleware[] = [], protocol: 'http' | 'h2c' = 'http') {
  vi.useFakeTimers({ toFake: ['Date'] });
  const state = { failing: false, ranges: false, chunked: false, changed: false, requests: [] as IncomingHttpHeaders[], slowClosed: [] as Promise<unknown>[], held: [] as (ServerResponse | Http2ServerResponse)[] };
  const answer = (request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse) => {
    state.requests.push(request.headers);
    request.resume();
    if (request.url!.startsWith('/slow')) {
      // A long body (a video's) whose first bytes come at once and the rest never.
      const extra = SLOW_HEADERS[request.url!.slice('/slow?'.length)] ?? {};
      response.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(SLOW_LENGTH), ...headers, ...extra });
      (response as ServerResponse).write(BIG.slice(0, 100));
      // It never ends that body: only the gateway closing its connection (or stream) closes it.
      state.slowClosed.push(new Promise((resolve) => response.once('close', resolve)));
      return;
    }
    if (request.url === '/held') {
      // A stored answer whose first 2 bytes come at once and the rest when the test writes them.
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(BODY.length), ...headers });
      (response as ServerResponse).write(BODY.slice(0, 2));
      return void state.held.push(response);
    }
    if (state.failing) return void response.writeHead(503, { 'content-type': 'text/plain' }).end('down');
    if (request.url === '/missing') return void response.writeHead(404, { 'content-type': 'text/plain', ...headers }).end(BODY);
    if (request.url === '/big') return void response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(BIG.length), ...headers }).end(BIG);
    if (state.changed) return void response.writeHead(200, { 'content-type': 'text/plain', ...headers, etag: '"v2"', 'content-length': String(BODY.length) }).end(BODY.toUpperCase());
    const own = { etag: '"v1"', 'last-modified': LAST_MODIFIED, ...headers };
    if (request.headers['if-none-match'] === '"v1"') return void response.writeHead(304, own).end();
    const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
    if (state.ranges && range !== null) {
      const [first, last] = [Number(range[1]), Number(range[2])];
      return void response.writeHead(206, { 'content-type': 'text/plain', ...own, 'content-range': `bytes ${first}-${last}/${BODY.length}` }).end(BODY.slice(first, last + 1));
    }
    // Its length known (a file's), unless `state.chunked` (a body made as it goes).
    response.writeHead(200, { 'content-type': 'text/plain', ...own, ...(state.chunked ? {} : { 'content-length': String(BODY.length) }) }).end(BODY);
  };
  const backend: Server | Http2Server = protocol === 'http' ? createServer(answer) : createHttp2Server(answer);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const balancer = singleInstanceBalancer(protocol, (backend.address() as AddressInfo).port, 'round-robin');
  const transports = new UpstreamTransports();
  const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => TEST_PROXY_POLICY, transports });
  const server = await serveMiddleware([...before, cache(SETTINGS, 'range')], servingCachedHits(proxy));
  const agent = new Agent({ keepAlive: true });
  return {
    state,
    reports: balancer.reports,
    send: server.send,
    /** Sends over a connection kept open after each answer, as a player's is: a part that came before the whole body does not end it. */
    sendKeptAlive: (path: string, options: { method?: string; headers?: OutgoingHttpHeaders } = {}) => server.send(path, { ...options, agent }),
    contexts: server.contexts,
    later: (ms: number) => vi.setSystemTime(Date.now() + ms),
    close: async () => {
      vi.useRealTimers();
      agent.destroy();
      await server.close();
      balancer.close();
      await transports.close(0);
      if ('closeAllConnections' in backend) backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
    },
  };
}

describe('cache: a stored answer answers a Range request', () => {
  let setup: Awaited<ReturnType<typeof rangeSetup>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  it.each([
    ['bytes=2-5', 'bytes 2-5/26', 'cdef'],
    ['bytes=20-', 'bytes 20-25/26', 'uvwxyz'],
    ['bytes=-3', 'bytes 23-25/26', 'xyz'],
    ['bytes=24-99', 'bytes 24-25/26', 'yz'],
  ])('answers %s on a hit with 206, its Content-Range and the part\'s length (HIT, 206 in the access log)', async (range, contentRange, part) => {
    setup = await rangeSetup();
    const stored = await setup.send('/a');
    expect([stored.status, stored.headers['x-cache-status']]).toEqual([200, 'MISS']);
    const hit = await setup.send('/a', { headers: { range } });
    expect([hit.status, hit.headers['x-cache-status'], hit.body.toString()]).toEqual([206, 'HIT', part]);
    expect(hit.headers['content-range']).toBe(contentRange);
    expect(hit.headers['content-length']).toBe(String(part.length));
    expect(hit.headers.etag).toBe('"v1"');
    expect(hit.headers['content-type']).toBe('text/plain');
    const line = accessLogText(setup.contexts[1]!, false);
    expect(line).toContain('"status":206');
    expect(line).toContain('"cache":"HIT"');
    expect(setup.state.requests).toHaveLength(1);
  });

  it('says Accept-Ranges: bytes on a hit of a 200, and on none of a 404, which ignores a Range', async () => {
    setup = await rangeSetup();
    await setup.send('/a');
    const hit = await setup.send('/a');
    expect([hit.status, hit.headers['x-cache-status'], hit.headers['accept-ranges'], hit.body.toString()]).toEqual([200, 'HIT', 'bytes', BODY]);
    await setup.send('/missing');
    const missing = await setup.send('/missing', { headers: { range: 'bytes=0-1' } });
    expect([missing.status, missing.headers['x-cache-status'], missing.headers['accept-ranges'], missing.body.toString()]).toEqual([404, 'HIT', undefined, BODY]);
  });

  it('answers a range that starts past the end with 416, the length in Content-Range and no body', async () => {
    setup = await rangeSetup();
    await setup.send('/a');
    const refused = await setup.send('/a', { headers: { range: 'bytes=26-' } });
    expect([refused.status, refused.headers['x-cache-status'], refused.body.length]).toEqual([416, 'HIT', 0]);
    expect(refused.headers['content-range']).toBe('bytes */26');
    expect(refused.headers['content-length']).toBe('0');
    expect(refused.headers['content-type']).toBeUndefined();
    expect(accessLogText(setup.contexts[1]!, false)).toContain('"status":416');
  });

  it('sends no digest of the whole content with a part or a 416, and keeps Repr-Digest, which is of the representation', async () => {
    const digests = { 'content-digest': 'sha-256=:d2hvbGU=:', 'content-md5': 'd2hvbGU=', 'repr-digest': 'sha-256=:cmVwcg==:' };
    setup = await rangeSetup({ 'cache-control': 'max-age=60', ...digests });
    await setup.send('/a');
    const whole = await setup.send('/a');
    expect([whole.status, whole.headers['content-digest'], whole.headers['content-md5']]).toEqual([200, digests['content-digest'], digests['content-md5']]);
    const part = await setup.send('/a', { headers: { range: 'bytes=0-1' } });
    expect([part.status, part.headers['content-digest'], part.headers['content-md5'], part.headers['repr-digest']]).toEqual([206, undefined, undefined, digests['repr-digest']]);
    // An empty content whose Content-Digest named 26 bytes would fail a client that checks it.
    const refused = await setup.send('/a', { headers: { range: 'bytes=26-' } });
    expect([refused.status, refused.headers['content-digest'], refused.headers['content-md5'], refused.body.length]).toEqual([416, undefined, undefined, 0]);
  });

  it.each([
    ['an invalid range', { range: 'bytes=5-2' }],
    ['another unit', { range: 'items=0-1' }],
    ['two ranges (no multipart answer)', { range: 'bytes=0-1,4-5' }],
    ['an If-Range with another ETag', { range: 'bytes=0-1', 'if-range': '"v2"' }],
    ['an If-Range with the ETag made weak', { range: 'bytes=0-1', 'if-range': 'W/"v1"' }],
    ['an If-Range with another date', { range: 'bytes=0-1', 'if-range': 'Thu, 02 Jan 2025 10:00:00 GMT' }],
  ])('sends the whole stored answer for %s', async (_what, headers) => {
    setup = await rangeSetup();
    await setup.send('/a');
    const whole = await setup.send('/a', { headers });
    expect([whole.status, whole.headers['x-cache-status'], whole.body.toString()]).toEqual([200, 'HIT', BODY]);
    expect(whole.headers['content-range']).toBeUndefined();
    expect(whole.headers['accept-ranges']).toBe('bytes');
  });

  it.each([
    ['an If-Match with another ETag', { range: 'bytes=2-3', 'if-match': '"v0"' }],
    ['an If-Match with the ETag made weak (strong comparison)', { range: 'bytes=2-3', 'if-match': 'W/"v1"' }],
    ['an If-Unmodified-Since before Last-Modified', { range: 'bytes=2-3', 'if-unmodified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }],
  ])('answers a range with %s with 412 and no part (RFC 9110 §13.2.2: preconditions come before the range)', async (_what, headers) => {
    // A client resuming a download of "v0" must not get v1's bytes to splice onto it.
    setup = await rangeSetup();
    await setup.send('/a');
    const failed = await setup.send('/a', { headers });
    expect([failed.status, failed.headers['x-cache-status'], failed.headers['content-range'], failed.body.length]).toEqual([412, 'HIT', undefined, 0]);
  });

  it('sends the errors page for 412 in place of the empty body of a 412 from memory, as for a 416', async () => {
    const page = { key: '412', from: 412, to: 412, file: '412.txt', body: new RespondFileBody(Buffer.from('stale copy')) };
    setup = await rangeSetup(undefined, [errors({ pages: [page], contentType: 'text/plain' })]);
    await setup.send('/a');
    const failed = await setup.send('/a', { headers: { range: 'bytes=2-3', 'if-match': '"v0"' } });
    expect([failed.status, failed.headers['x-cache-status'], failed.headers['content-type'], failed.body.toString()]).toEqual([412, 'HIT', 'text/plain', 'stale copy']);
  });

  it('sends the errors page for 412 in place of the empty body of a fetched answer\'s 412, as a hit does, the answer still stored', async () => {
    const page = { key: '412', from: 412, to: 412, file: '412.txt', body: new RespondFileBody(Buffer.from('stale copy')) };
    setup = await rangeSetup(undefined, [errors({ pages: [page], contentType: 'text/plain' })]);
    const failed = await setup.send('/a', { headers: { 'if-match': '"v0"' } });
    expect([failed.status, failed.headers['x-cache-status'], failed.headers['content-type'], failed.body.toString()]).toEqual([412, 'MISS', 'text/plain', 'stale copy']);
    expect(setup.state.requests[0]!['if-match']).toBeUndefined();
    await waitFor(async () => (await setup!.send('/a')).headers['x-cache-status'] === 'HIT', { timeoutMs: 10_000, message: 'the answer behind the 412 to be stored' });
  });

  it.each([
    ['its ETag', '"v1"'],
    ['its Last-Modified', LAST_MODIFIED],
  ])('answers a range whose If-Range has %s with the part', async (_what, ifRange) => {
    setup = await rangeSetup();
    await setup.send('/a');
    const part = await setup.send('/a', { headers: { range: 'bytes=0-1', 'if-range': ifRange } });
    expect([part.status, part.headers['content-range'], part.body.toString()]).toEqual([206, 'bytes 0-1/26', 'ab']);
  });

  it.each([
    ['an If-Match with its ETag', { 'if-match': '"v1"' }],
    ['an If-Match that lists its ETag among others', { 'if-match': '"v0", "v1"' }],
    ['an If-Match: *', { 'if-match': '*' }],
    ['an If-Unmodified-Since at its Last-Modified', { 'if-unmodified-since': LAST_MODIFIED }],
    ['an If-Unmodified-Since that is no HTTP-date (ignored)', { 'if-unmodified-since': 'yesterday' }],
  ])('answers a range with %s with the part', async (_what, headers) => {
    setup = await rangeSetup();
    await setup.send('/a');
    const part = await setup.send('/a', { headers: { range: 'bytes=2-3', ...headers } });
    expect([part.status, part.headers['content-range'], part.body.toString()]).toEqual([206, 'bytes 2-3/26', 'cd']);
  });

  it('sends the whole stored answer to an If-Range with its Last-Modified when its Date is of the same second (a weak validator)', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=60', date: LAST_MODIFIED });
    await setup.send('/a');
    const whole = await setup.send('/a', { headers: { range: 'bytes=0-1', 'if-range': LAST_MODIFIED } });
    expect([whole.status, whole.headers['x-cache-status'], whole.body.toString()]).toEqual([200, 'HIT', BODY]);
  });

  it('ignores a Range on HEAD: the head of the whole answer', async () => {
    setup = await rangeSetup();
    await setup.send('/a');
    const head = await setup.send('/a', { method: 'HEAD', headers: { range: 'bytes=0-1' } });
    expect([head.status, head.headers['x-cache-status'], head.headers['content-length'], head.headers['accept-ranges'], head.body.length]).toEqual([200, 'HIT', '26', 'bytes', 0]);
    expect(head.headers['content-range']).toBeUndefined();
  });

  it('answers a 304 before the range to a conditional the stored answer meets', async () => {
    setup = await rangeSetup();
    await setup.send('/a');
    const notModified = await setup.send('/a', { headers: { range: 'bytes=0-1', 'if-none-match': '"v1"' } });
    expect([notModified.status, notModified.headers['content-range'], notModified.body.length]).toEqual([304, undefined, 0]);
  });

  it('answers a range from the stored answer a 304 freshened (REVALIDATED), and says Accept-Ranges: bytes where the upstream said none', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=1', 'accept-ranges': 'none' });
    const miss = await setup.send('/a');
    expect(miss.headers['accept-ranges']).toBe('none');
    setup.later(2_000);
    const part = await setup.send('/a', { headers: { range: 'bytes=-2' } });
    expect(setup.state.requests[1]!['if-none-match']).toBe('"v1"');
    expect(setup.state.requests[1]!.range).toBeUndefined();
    expect([part.status, part.headers['x-cache-status'], part.headers['content-range'], part.body.toString()]).toEqual([206, 'REVALIDATED', 'bytes 24-25/26', 'yz']);
    expect(part.headers['accept-ranges']).toBe('bytes');
    expect(accessLogText(setup.contexts[1]!, false)).toContain('"status":206');
    // The 304's own Accept-Ranges: none does not replace the cache's.
    const hit = await setup.send('/a');
    expect([hit.status, hit.headers['x-cache-status'], hit.headers['accept-ranges']]).toEqual([200, 'HIT', 'bytes']);
  });

  it('answers a range from the stale stored answer sent for a failed fetch (STALE)', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=1' });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.failing = true;
    const part = await setup.send('/a', { headers: { range: 'bytes=3-4' } });
    expect([part.status, part.headers['x-cache-status'], part.headers['content-range'], part.body.toString()]).toEqual([206, 'STALE', 'bytes 3-4/26', 'de']);
  });

  it('with compress, answers a range with the identity part, and compresses a hit without one, with no Accept-Ranges', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=60' }, [compress(GZIP)]);
    await setup.send('/a');
    const compressed = await setup.send('/a', { headers: { 'accept-encoding': 'gzip' } });
    expect([compressed.status, compressed.headers['x-cache-status'], compressed.headers['content-encoding'], compressed.headers['accept-ranges']]).toEqual([200, 'HIT', 'gzip', undefined]);
    expect(gunzipSync(compressed.body).toString()).toBe(BODY);
    const part = await setup.send('/a', { headers: { 'accept-encoding': 'gzip', range: 'bytes=0-2' } });
    expect([part.status, part.headers['x-cache-status'], part.headers['content-encoding'], part.headers['content-range'], part.body.toString()]).toEqual([206, 'HIT', undefined, 'bytes 0-2/26', 'abc']);
  });
});

describe('cache: a miss with Range fetches the whole answer, stores it and sends the client its part', () => {
  let setup: Awaited<ReturnType<typeof rangeSetup>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  it.each([
    ['bytes=2-5', 'bytes 2-5/26', 'cdef'],
    ['bytes=0-', 'bytes 0-25/26', BODY],
    ['bytes=-3', 'bytes 23-25/26', 'xyz'],
    ['bytes=24-99', 'bytes 24-25/26', 'yz'],
  ])('answers %s on a miss with 206 and its part, asking the upstream for the whole answer, which the next requests hit', async (range, contentRange, part) => {
    setup = await rangeSetup();
    setup.state.ranges = true;
    const miss = await setup.sendKeptAlive('/a', { headers: { range, 'if-range': '"v1"' } });
    expect([miss.status, miss.headers['x-cache-status'], miss.body.toString()]).toEqual([206, 'MISS', part]);
    expect([miss.headers['content-range'], miss.headers['content-length'], miss.headers.etag]).toEqual([contentRange, String(part.length), '"v1"']);
    expect([setup.state.requests[0]!.range, setup.state.requests[0]!['if-range']]).toEqual([undefined, undefined]);
    const line = accessLogText(setup.contexts[0]!, false);
    expect(line).toContain('"status":206');
    expect(line).toContain('"cache":"MISS"');
    expect(line).toContain(`"bytes":${part.length}`);
    const hit = await setup.send('/a', { headers: { range } });
    expect([hit.status, hit.headers['x-cache-status'], hit.headers['content-range'], hit.body.toString()]).toEqual([206, 'HIT', contentRange, part]);
    const whole = await setup.send('/a');
    expect([whole.status, whole.headers['x-cache-status'], whole.headers['content-length'], whole.body.toString()]).toEqual([200, 'HIT', '26', BODY]);
    expect(setup.state.requests).toHaveLength(1);
  });

  it('answers a miss whose range starts past the end with 416 and no body, and stores the whole answer', async () => {
    setup = await rangeSetup();
    const refused = await setup.sendKeptAlive('/a', { headers: { range: 'bytes=26-' } });
    expect([refused.status, refused.headers['x-cache-status'], refused.headers['content-range'], refused.headers['content-length'], refused.body.length]).toEqual([416, 'MISS', 'bytes */26', '0', 0]);
    expect(accessLogText(setup.contexts[0]!, false)).toContain('"status":416');
    const whole = await setup.send('/a');
    expect([whole.status, whole.headers['x-cache-status'], whole.body.toString()]).toEqual([200, 'HIT', BODY]);
    expect(setup.state.requests).toHaveLength(1);
  });

  it.each([
    ['an If-Range with another ETag', { range: 'bytes=0-1', 'if-range': '"v0"' }],
    ['an invalid range', { range: 'bytes=5-2' }],
    ['two ranges (no multipart answer)', { range: 'bytes=0-1,4-5' }],
  ])('sends the whole fetched answer on a miss with %s, asking the upstream for it without Range, and stores it', async (_what, headers) => {
    setup = await rangeSetup();
    setup.state.ranges = true;
    const miss = await setup.sendKeptAlive('/a', { headers });
    expect([miss.status, miss.headers['x-cache-status'], miss.headers['content-range'], miss.body.toString()]).toEqual([200, 'MISS', undefined, BODY]);
    expect([setup.state.requests[0]!.range, setup.state.requests[0]!['if-range']]).toEqual([undefined, undefined]);
    const hit = await setup.send('/a', { headers: { range: 'bytes=0-1' } });
    expect([hit.status, hit.headers['x-cache-status'], hit.body.toString()]).toEqual([206, 'HIT', 'ab']);
  });

  it('sends a fetched 200 whose length is not known whole (no Content-Range to give), and stores it', async () => {
    setup = await rangeSetup();
    setup.state.chunked = true;
    const miss = await setup.sendKeptAlive('/a', { headers: { range: 'bytes=0-1' } });
    expect([miss.status, miss.headers['x-cache-status'], miss.headers['content-range'], miss.body.toString()]).toEqual([200, 'MISS', undefined, BODY]);
    expect(setup.state.requests[0]!.range).toBeUndefined();
    const hit = await setup.send('/a', { headers: { range: 'bytes=0-1' } });
    expect([hit.status, hit.headers['x-cache-status'], hit.body.toString()]).toEqual([206, 'HIT', 'ab']);
  });

  it('sends the part of a body past maxEntrySize on a miss, storing nothing of it', async () => {
    setup = await rangeSetup();
    const miss = await setup.sendKeptAlive('/big', { headers: { range: 'bytes=1495-1504' } });
    expect([miss.status, miss.headers['x-cache-status'], miss.headers['content-range'], miss.body.toString()]).toEqual([206, 'MISS', 'bytes 1495-1504/2000', BIG.slice(1495, 1505)]);
    expect(accessLogText(setup.contexts[0]!, false)).toContain('"bytes":10');
    const next = await setup.sendKeptAlive('/big', { headers: { range: 'bytes=1998-' } });
    expect([next.status, next.headers['x-cache-status'], next.body.toString()]).toEqual([206, 'MISS', '89']);
    expect(setup.state.requests).toHaveLength(2);
  });

  it('sends the part of a changed answer on an expired refetch, judging If-Range by the new ETag, and stores it', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=1' });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.changed = true;
    // The client holds v1's bytes: v2's would corrupt them, so it gets the whole new answer.
    const whole = await setup.sendKeptAlive('/a', { headers: { range: 'bytes=0-1', 'if-range': '"v1"' } });
    expect([whole.status, whole.headers['x-cache-status'], whole.headers.etag, whole.body.toString()]).toEqual([200, 'EXPIRED', '"v2"', BODY.toUpperCase()]);
    expect(setup.state.requests[1]!.range).toBeUndefined();
    const hit = await setup.send('/a', { headers: { range: 'bytes=0-1', 'if-range': '"v2"' } });
    expect([hit.status, hit.headers['x-cache-status'], hit.body.toString()]).toEqual([206, 'HIT', 'AB']);
    setup.later(2_000);
    const part = await setup.sendKeptAlive('/a', { headers: { range: 'bytes=2-3', 'if-range': '"v2"' } });
    expect([part.status, part.headers['x-cache-status'], part.headers['content-range'], part.body.toString()]).toEqual([206, 'EXPIRED', 'bytes 2-3/26', 'CD']);
  });

  it('with compress, answers a miss\'s range with the identity part and stores the whole answer, which a later client gets compressed', async () => {
    setup = await rangeSetup({ 'cache-control': 'max-age=60' }, [compress(GZIP)]);
    const part = await setup.sendKeptAlive('/a', { headers: { 'accept-encoding': 'gzip', range: 'bytes=0-2' } });
    expect([part.status, part.headers['x-cache-status'], part.headers['content-encoding'], part.headers['content-range'], part.body.toString()]).toEqual([206, 'MISS', undefined, 'bytes 0-2/26', 'abc']);
    const compressed = await setup.send('/a', { headers: { 'accept-encoding': 'gzip' } });
    expect([compressed.status, compressed.headers['x-cache-status'], compressed.headers['content-encoding']]).toEqual([200, 'HIT', 'gzip']);
    expect(gunzipSync(compressed.body).toString()).toBe(BODY);
  });

  it('passes the Range of a request that may store nothing (no-store) to the upstream, and its 206 to the client', async () => {
    setup = await rangeSetup();
    setup.state.ranges = true;
    const miss = await setup.send('/a', { headers: { range: 'bytes=1-3', 'cache-control': 'no-store' } });
    expect([miss.status, miss.headers['content-range'], miss.body.toString()]).toEqual([206, 'bytes 1-3/26', 'bcd']);
    expect(setup.state.requests[0]!.range).toBe('bytes=1-3');
    const next = await setup.send('/a');
    expect([next.status, next.headers['x-cache-status']]).toEqual([200, 'MISS']);
  });

  it.each((['http', 'h2c'] as const).flatMap((protocol) => Object.keys(SLOW_HEADERS).map((name) => [name, protocol] as const)))('ends a miss\'s part of an answer that will not be stored (%s, from %s) once it is sent, leaving the rest of the upstream body unread, not counted against the upstream', async (name, protocol) => {
    setup = await rangeSetup(undefined, [], protocol);
    // The upstream sends 100 bytes of its 10 MB and no more: the client's part must not wait on the rest.
    const part = await setup.sendKeptAlive(`/slow?${name}`, { headers: { range: 'bytes=10-19' } });
    expect([part.status, part.headers['x-cache-status'], part.headers['content-range'], part.headers['content-length'], part.body.toString()]).toEqual([206, 'MISS', `bytes 10-19/${SLOW_LENGTH}`, '10', BIG.slice(10, 20)]);
    // The gateway closes the upstream's connection (or stream), its body unfinished.
    await setup.state.slowClosed[0];
    const line = accessLogText(setup.contexts[0]!, false);
    expect(line).toContain('"status":206');
    expect(line).toContain('"bytes":10');
    expect(line).not.toContain('errorClass');
    expect(setup.reports.map((report) => report.ok)).toEqual([true]);
    // A 416 needs none of the body.
    const refused = await setup.sendKeptAlive(`/slow?${name}`, { headers: { range: `bytes=${SLOW_LENGTH}-` } });
    expect([refused.status, refused.headers['content-range'], refused.body.length]).toEqual([416, `bytes */${SLOW_LENGTH}`, 0]);
    await setup.state.slowClosed[1];
    // The client's kept-alive connection carries its next request.
    const next = await setup.sendKeptAlive('/a', { headers: { range: 'bytes=0-1' } });
    expect([next.status, next.body.toString()]).toEqual([206, 'ab']);
    expect(setup.reports.map((report) => report.ok)).toEqual([true, true, true]);
  });

  it.each(['http', 'h2c'] as const)('ends a miss\'s part at once and reads the body on (from %s) into the cache: the whole answer is stored, the attempt judged by the upstream alone', async (protocol) => {
    setup = await rangeSetup(undefined, [], protocol);
    const part = await setup.sendKeptAlive('/held', { headers: { range: 'bytes=0-1' } });
    expect([part.status, part.headers['x-cache-status'], part.body.toString()]).toEqual([206, 'MISS', 'ab']);
    // The client's 206 has ended while the upstream still holds the rest: nothing reported yet.
    await waitFor(() => setup!.contexts[0]!.response.writableEnded, { timeoutMs: 5_000, message: 'the 206 to end before the body' });
    expect(setup.reports).toHaveLength(0);
    setup.state.held[0]!.end(BODY.slice(2));
    await waitFor(() => setup!.reports.length === 1, { timeoutMs: 5_000, message: 'the attempt to end with the body' });
    expect(setup.reports.map((report) => report.ok)).toEqual([true]);
    const whole = await setup.sendKeptAlive('/held');
    expect([whole.status, whole.headers['x-cache-status'], whole.body.toString()]).toEqual([200, 'HIT', BODY]);
    expect(setup.state.requests).toHaveLength(1);
  });
});
