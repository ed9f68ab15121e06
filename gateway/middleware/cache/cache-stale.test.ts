import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CacheSettings, CacheStaleSettings } from '../../config/types.ts';
import { createProxy, type ProxyPolicy } from '../../proxy/proxy.ts';
import { singleInstanceBalancer, TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { UpstreamTransports } from '../../transports/index.ts';
import { accessLogText } from '../access-log/index.ts';
import { refusingPort } from '../../../test/harness/ports.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { cacheRequestsTotal } from './cache-metrics.ts';
import { CACHE_TEST_SETTINGS, USE_STALE_NOT_CONFIGURED } from './cache-testing.ts';
import { cache, servingCachedHits } from './index.ts';

/** What the backend does with a request: answers 200 (`version 1`), 503, or never answers (a headers timeout). */
type Backend = 'ok' | '503' | 'silent';

const USE_STALE: CacheStaleSettings = { on: ['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504'], maxStaleMs: 86_400_000, answerDirectives: true };
/** `useStale` left out of the configuration: only an answer's own `stale-if-error`. */
const NOT_CONFIGURED = USE_STALE_NOT_CONFIGURED;

let names = 0;

/**
 * A cache in front of the real proxy (real balancer with outlier detection at one failure, real
 * HTTP/1.1 transport, 300 ms headers timeout while the backend is silent) to a real backend whose answers the test switches,
 * with http-cache-semantics' clock (Date) in the test's hands; `refuse()` sends the service's next
 * requests to an instance whose port refuses connections instead.
 */
async function staleSetup(useStale: CacheStaleSettings, headers: OutgoingHttpHeaders, protocol: 'http' | 'h2c' = 'http', policy: Partial<ProxyPolicy> = {}, settings: Partial<CacheSettings> = {}) {
  vi.useFakeTimers({ toFake: ['Date'] });
  const state = { backend: 'ok' as Backend, requests: [] as IncomingHttpHeaders[], methods: [] as (string | undefined)[] };
  const silent: (ServerResponse | Http2ServerResponse)[] = [];
  const answer = (request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse) => {
    state.requests.push(request.headers);
    state.methods.push(request.method);
    request.resume();
    response.sendDate = false;
    if (state.backend === 'silent') return void silent.push(response);
    if (state.backend === '503') return void response.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end('down');
    response.writeHead(200, { 'content-type': 'text/plain', etag: '"v1"', ...headers }).end('version 1');
  };
  const backend: Server | Http2Server = protocol === 'http' ? createServer(answer) : createHttp2Server(answer);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const serving = singleInstanceBalancer(protocol, (backend.address() as AddressInfo).port, 'round-robin');
  const refusing = singleInstanceBalancer('http', await refusingPort(), 'round-robin');
  let current: Pick<typeof serving, 'picker'> | undefined = serving;
  const failures: (string | undefined)[] = [];
  const transports = new UpstreamTransports();
  const proxy = createProxy({
    pickerFor: () => current?.picker,
    // 300 ms only while the backend is silent: a request it answers must not fail on a stall of a loaded machine.
    policyFor: () => ({ ...TEST_PROXY_POLICY, headersTimeoutMs: state.backend === 'silent' ? 300 : 10_000, ...policy }),
    transports,
    observer: { attempt: (_service, _address, errorClass) => failures.push(errorClass), unavailable: (_service, reason) => failures.push(reason) },
  });
  const name = `stale-${(names += 1)}`;
  const server: MiddlewareServer = await serveMiddleware([cache({ ...CACHE_TEST_SETTINGS, ...settings, useStale }, name)], servingCachedHits(proxy));
  const staleCount = async () => (await cacheRequestsTotal.get()).values.find((value) => value.labels.middleware === name && value.labels.status === 'STALE')?.value ?? 0;
  return {
    state,
    send: server.send,
    port: server.port,
    contexts: server.contexts,
    /** Failures the proxy counted against instances (`AttemptObserver.attempt`; undefined for a success). */
    failures,
    serving,
    refusing,
    refuse: () => (current = refusing),
    /** The service's next pick is the refusing instance, every later one the serving instance (a retry's). */
    refuseOnce: () => {
      let picks = 0;
      current = { picker: { pick: (pickContext) => ((picks += 1) === 1 ? refusing : serving).picker.pick(pickContext), peek: (pickContext) => serving.picker.peek(pickContext) } };
    },
    /** The service loses its last instance. */
    vanish: () => (current = undefined),
    later: (ms: number) => vi.setSystemTime(Date.now() + ms),
    staleCount,
    close: async () => {
      vi.useRealTimers();
      for (const response of silent) response.destroy();
      await server.close();
      serving.close();
      refusing.close();
      await transports.close(0);
      if ('closeAllConnections' in backend) backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
    },
  };
}

describe('cache: a stale answer in place of a failed fetch (useStale, stale-if-error)', () => {
  let setup: Awaited<ReturnType<typeof staleSetup>> | undefined;
  afterEach(async () => {
    await setup?.close();
    setup = undefined;
  });

  it.each([
    ['a refused connection', 'connect-refused', 'http'],
    ['a 503', 'http-5xx', 'http'],
    ['a 503 from an h2c upstream', 'http-5xx', 'h2c'],
    ['a response headers timeout', 'headers-timeout', 'http'],
  ] as const)('sends the stale stored answer for %s (STALE, with Age), and counts the failure against the instance', async (what, failure, protocol) => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' }, protocol);
    const { send, state, later } = setup;
    expect((await send('/a')).headers['x-cache-status']).toBe('MISS');
    later(3_000);
    if (what === 'a refused connection') setup.refuse();
    else state.backend = failure === 'http-5xx' ? '503' : 'silent';
    const stale = await send('/a');
    expect([stale.status, stale.headers['x-cache-status'], stale.body.toString()]).toEqual([200, 'STALE', 'version 1']);
    expect(Number(stale.headers.age)).toBeGreaterThanOrEqual(3);
    // Nothing of the failure's own answer reaches the client.
    expect(stale.headers['retry-after']).toBeUndefined();
    expect(setup.failures).toEqual([undefined, failure]);
    expect(await setup.staleCount()).toBe(1);
    const context = setup.contexts[1]!;
    expect(accessLogText(context, false)).toContain('"status":200');
    expect(accessLogText(context, false)).toContain('"cache":"STALE"');
    // The passive health check heard of it as without a cache (outlier detection ejects at one failure).
    const failing = what === 'a refused connection' ? setup.refusing : setup.serving;
    await waitFor(() => failing.ejected() === true, { message: 'the failing instance is ejected' });
  });

  it('retries a refused connection on another instance before any stale answer, and sends that instance\'s fresh answer', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' }, 'http', { retries: 1, retryOn: ['connect-failure'] });
    const { send, later } = setup;
    await send('/a');
    later(2_000);
    setup.refuseOnce();
    const fetched = await send('/a');
    expect([fetched.status, fetched.headers['x-cache-status']]).toEqual([200, 'EXPIRED']);
    expect(setup.failures).toEqual([undefined, 'connect-refused', undefined]);
    expect(setup.state.requests).toHaveLength(2);
    expect(await setup.staleCount()).toBe(0);
  });

  it('sends a HEAD miss as a GET on its retry too (convertHead), the answer stored for the next GET', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=60' }, 'http', { retries: 1, retryOn: ['connect-failure'] });
    setup.refuseOnce();
    const head = await setup.send('/a', { method: 'HEAD' });
    expect([head.status, head.headers['x-cache-status'], head.body.toString()]).toEqual([200, 'MISS', '']);
    expect(setup.failures).toEqual(['connect-refused', undefined]);
    expect(setup.state.methods).toEqual(['GET']);
    const hit = await setup.send('/a');
    expect([hit.headers['x-cache-status'], hit.body.toString()]).toEqual(['HIT', 'version 1']);
  });

  it('answers a HEAD for a stale entry as it would a GET (convertHead): EXPIRED fetches a GET and stores its answer, STALE sends the stored head alone', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' });
    const { send, later } = setup;
    await send('/a');
    later(2_000);
    const expired = await send('/a', { method: 'HEAD' });
    // The head of the GET's answer, which this backend sends chunked: no Content-Length, as that GET gets.
    expect([expired.status, expired.headers['x-cache-status'], expired.headers['content-length'], expired.body.toString()]).toEqual([200, 'EXPIRED', undefined, '']);
    expect((await send('/a')).headers['x-cache-status']).toBe('HIT');
    later(2_000);
    setup.state.backend = '503';
    const stale = await send('/a', { method: 'HEAD' });
    // The stored answer's head, with the length it was stored with.
    expect([stale.status, stale.headers['x-cache-status'], stale.headers['content-length'], stale.body.toString()]).toEqual([200, 'STALE', '9', '']);
    expect(setup.state.methods).toEqual(['GET', 'GET', 'GET']);
  });

  it('sends the stored answer again for the next failure: the service has no instance left', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' });
    const { send, later } = setup;
    await send('/a');
    later(2_000);
    setup.refuse();
    expect((await send('/a')).headers['x-cache-status']).toBe('STALE');
    setup.vanish();
    const again = await send('/a');
    expect([again.status, again.headers['x-cache-status'], again.body.toString()]).toEqual([200, 'STALE', 'version 1']);
    expect(setup.failures).toEqual([undefined, 'connect-refused', 'no-instances']);
    expect(await setup.staleCount()).toBe(2);
  });

  it('sends nothing to a client that left while the upstream kept silent, and blames the upstream for nothing', async () => {
    // A headers timeout far off: the client's leaving, not a race with 300 ms, ends the attempt.
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' }, 'http', { headersTimeoutMs: 10_000 });
    const { state } = setup;
    await setup.send('/a');
    setup.later(2_000);
    state.backend = 'silent';
    // The same Host as the test client's, which the key holds.
    const client = connect(setup.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.end(`GET /a HTTP/1.1\r\nhost: 127.0.0.1:${setup.port}\r\n\r\n`);
    await waitFor(() => state.requests.length === 2, { message: 'the backend got the revalidation' });
    client.destroy();
    const context = setup.contexts[1]!;
    await waitFor(() => context.outcome.status === 499, { message: 'the request ends as the client\'s' });
    expect(context.outcome.cacheStatus).toBe('EXPIRED');
    expect(await setup.staleCount()).toBe(0);
    expect(setup.failures.slice(1)).not.toContain('headers-timeout');
  });

  it.each([
    ['a HEAD', 'HEAD', {}, 200, ''],
    ['an If-None-Match with its ETag', 'GET', { 'if-none-match': '"v1"' }, 304, ''],
    ['an If-None-Match with another ETag', 'GET', { 'if-none-match': '"v0"' }, 200, 'version 1'],
  ] as const)('answers %s from the stale entry as a hit would', async (_what, method, headers, status, body) => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.backend = '503';
    const stale = await setup.send('/a', { method, headers });
    expect([stale.status, stale.headers['x-cache-status'], stale.body.toString()]).toEqual([status, 'STALE', body]);
    expect(stale.headers.etag).toBe('"v1"');
  });

  it.each([
    ['an If-Match with its ETag', { 'if-match': '"v1"' }, 200, 'version 1'],
    ['an If-Match with another ETag', { 'if-match': '"v0"' }, 412, ''],
    ['an If-Unmodified-Since before its Last-Modified', { 'if-unmodified-since': 'Sun, 01 Jun 2025 00:00:00 GMT' }, 412, ''],
    ['an If-Unmodified-Since at its Last-Modified', { 'if-unmodified-since': 'Mon, 02 Jun 2025 00:00:00 GMT' }, 200, 'version 1'],
    ['a Range with an If-Range of its ETag', { range: 'bytes=0-6', 'if-range': '"v1"' }, 206, 'version'],
    ['a Range with an If-Range of another ETag', { range: 'bytes=0-6', 'if-range': '"v0"' }, 200, 'version 1'],
  ] as const)('judges %s on the stale entry as a hit would (STALE), and still counts the 503 against the instance', async (_what, headers, status, body) => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1', 'last-modified': 'Mon, 02 Jun 2025 00:00:00 GMT' });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.backend = '503';
    const stale = await setup.send('/a', { headers });
    expect([stale.status, stale.headers['x-cache-status'], stale.body.toString()]).toEqual([status, 'STALE', body]);
    // A 412 from memory carries none of the stored headers (as on a hit); any other answer is the stored one's.
    expect(stale.headers.etag).toBe(status === 412 ? undefined : '"v1"');
    // The fetch that may store asked without the client's own conditionals, for the whole answer.
    expect([setup.state.requests[1]!['if-match'], setup.state.requests[1]!['if-unmodified-since'], setup.state.requests[1]!.range]).toEqual([undefined, undefined, undefined]);
    expect(setup.failures).toEqual([undefined, 'http-5xx']);
    expect(await setup.staleCount()).toBe(1);
    await waitFor(() => setup!.serving.ejected() === true, { message: 'the failing instance is ejected' });
  });

  it('judges on the stale entry the If-Match of a fetch that stores nothing (a HEAD not converted), which went upstream and met a 503 there', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' }, 'http', {}, { convertHead: false });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.backend = '503';
    const failed = await setup.send('/a', { method: 'HEAD', headers: { 'if-match': '"v0"' } });
    expect([failed.status, failed.headers['x-cache-status']]).toEqual([412, 'STALE']);
    const held = await setup.send('/a', { method: 'HEAD', headers: { 'if-match': '"v1"' } });
    expect([held.status, held.headers['x-cache-status'], held.headers['content-length']]).toEqual([200, 'STALE', '9']);
    // The upstream got the HEAD with the client's own If-Match, and failed without judging it.
    expect(setup.state.methods.slice(1)).toEqual(['HEAD', 'HEAD']);
    expect(setup.state.requests.slice(1).map((request) => request['if-match'])).toEqual(['"v0"', '"v1"']);
    expect(setup.failures).toEqual([undefined, 'http-5xx', 'http-5xx']);
  });

  it.each([
    ['no useStale, an answer without stale-if-error', NOT_CONFIGURED, 'max-age=1', {}, 2_000],
    ['useStale: false, an answer with stale-if-error', { on: [], maxStaleMs: 0, answerDirectives: false }, 'max-age=1, stale-if-error=60', {}, 2_000],
    ['useStale without http_503', { ...USE_STALE, on: ['error', 'timeout'] }, 'max-age=1', {}, 2_000],
    ['past maxStale', { ...USE_STALE, maxStaleMs: 1_000 }, 'max-age=1', {}, 3_000],
    ['past the answer\'s stale-if-error', NOT_CONFIGURED, 'max-age=1, stale-if-error=1', {}, 3_000],
    ['proxy-revalidate', USE_STALE, 'max-age=1, proxy-revalidate, stale-if-error=60', {}, 2_000],
    ['no-cache', USE_STALE, 'no-cache, max-age=1, stale-if-error=60', {}, 2_000],
    ['its own s-maxage (proxy-revalidate for a shared cache)', USE_STALE, 's-maxage=1', {}, 2_000],
    ['its own s-maxage, past the stale-if-error=1 it grants, however long useStale allows', USE_STALE, 's-maxage=1, stale-if-error=1', {}, 3_000],
    ['a request with max-age=0', USE_STALE, 'max-age=1', { 'cache-control': 'max-age=0' }, 2_000],
    ['a request with max-stale=1', USE_STALE, 'max-age=1', { 'cache-control': 'max-stale=1' }, 3_000],
    ['a request with no-cache', USE_STALE, 'max-age=1', { 'cache-control': 'no-cache' }, 2_000],
  ] as const)('passes the 503 on (no stale answer) with %s', async (_what, useStale, control, requestHeaders, wait) => {
    setup = await staleSetup(useStale, { 'cache-control': control });
    await setup.send('/a');
    setup.later(wait);
    setup.state.backend = '503';
    const answer = await setup.send('/a', { headers: requestHeaders });
    expect([answer.status, answer.body.toString()]).toEqual([503, 'down']);
    expect(answer.headers['x-cache-status']).not.toBe('STALE');
    expect(await setup.staleCount()).toBe(0);
  });

  it('passes on the 503 of a must-revalidate answer, which is never stored', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1, must-revalidate, stale-if-error=60' });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.backend = '503';
    const answer = await setup.send('/a');
    expect([answer.status, answer.headers['x-cache-status']]).toEqual([503, 'MISS']);
  });

  it.each([
    ['max-age=1, stale-if-error=60', {}],
    ['s-maxage=1, stale-if-error=60', {}],
    ['max-age=1', { 'cache-control': 'max-age=0, max-stale=60' }],
  ] as const)('sends the stale answer for a 503 with %s, the request with %j', async (control, requestHeaders) => {
    setup = await staleSetup(control === 'max-age=1' ? USE_STALE : NOT_CONFIGURED, { 'cache-control': control });
    await setup.send('/a');
    setup.later(2_000);
    setup.state.backend = '503';
    const stale = await setup.send('/a', { headers: requestHeaders });
    expect([stale.status, stale.headers['x-cache-status'], stale.body.toString()]).toEqual([200, 'STALE', 'version 1']);
  });

  it('sends the upstream\'s own answer for a stale entry while it answers (EXPIRED), its validator asked', async () => {
    setup = await staleSetup(USE_STALE, { 'cache-control': 'max-age=1' });
    await setup.send('/a');
    setup.later(2_000);
    const again = await setup.send('/a');
    expect([again.status, again.headers['x-cache-status']]).toEqual([200, 'EXPIRED']);
    expect(setup.state.requests[1]!['if-none-match']).toBe('"v1"');
  });
});
