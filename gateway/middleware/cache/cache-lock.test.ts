import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheSettings } from '../../config/types.ts';
import { createProxy, type ProxyPolicy } from '../../proxy/proxy.ts';
import { singleInstanceBalancer, TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { UpstreamTransports } from '../../transports/index.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { serveMiddleware, type TestResponse } from '../middleware-testing.ts';
import { cacheRequestsTotal } from './cache-metrics.ts';
import { cache, servingCachedHits } from './index.ts';

const SETTINGS: CacheSettings = {
  maxBytes: 1_048_576,
  maxEntryBytes: 1_024,
  defaultTtlMs: undefined,
  methods: ['GET', 'HEAD'],
  statuses: [200],
  cacheStatusHeader: 'x-cache-status',
  useStale: { on: [], maxStaleMs: 0, staleIfError: true },
  lockTimeoutMs: 5_000,
};

let names = 0;

/**
 * A cache (with `settings`) in front of the real proxy and a real backend that holds every answer
 * (`max-age=60`, its body the request's number) until the test lets it go (`answer(n)`).
 */
async function lockSetup(settings: Partial<CacheSettings>, policy: ProxyPolicy = TEST_PROXY_POLICY) {
  const held: ServerResponse[] = [];
  const backend = createServer((request, response) => {
    request.resume();
    held.push(response);
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const balancer = singleInstanceBalancer('http', (backend.address() as AddressInfo).port, 'round-robin');
  const transports = new UpstreamTransports();
  const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => policy, transports });
  const name = `lock-${(names += 1)}`;
  const server = await serveMiddleware([cache({ ...SETTINGS, ...settings }, name)], servingCachedHits(proxy));
  return {
    held,
    send: server.send,
    port: server.port,
    contexts: server.contexts,
    /** Lets the backend's `n`th request (from 1) have its answer. */
    answer: (n: number) => held[n - 1]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end(`request ${n}`),
    count: async (status: string) => (await cacheRequestsTotal.get()).values.find((value) => value.labels.middleware === name && value.labels.status === status)?.value ?? 0,
    close: async () => {
      for (const response of held) response.destroy();
      await server.close();
      balancer.close();
      await transports.close(0);
      backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
    },
  };
}

const statusAndBody = (response: TestResponse) => [response.headers['x-cache-status'], response.body.toString()];

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
    client.end(`GET /a HTTP/1.1\r\nhost: 127.0.0.1:${setup.port}\r\n\r\n`);
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
});
