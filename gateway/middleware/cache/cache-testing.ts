import { createServer, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { vi } from 'vitest';
import type { CacheSettings, CacheStaleSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { createProxy, type ProxyPolicy } from '../../proxy/proxy.ts';
import { singleInstanceBalancer, TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import { UpstreamTransports } from '../../transports/index.ts';
import { serveMiddleware, type TestResponse } from '../middleware-testing.ts';
import { cacheRequestsTotal } from './cache-metrics.ts';
import { cache, servingCachedHits } from './index.ts';

/** For tests: `useStale` left out of the configuration, as resolved: only an answer's own `stale-if-error`. */
export const USE_STALE_NOT_CONFIGURED: CacheStaleSettings = { on: [], maxStaleMs: 0, answerDirectives: true };

/** For tests: a `cache` as a configuration with 1 MiB, 1 KiB entries and only 200s kept resolves; each test file spreads its own changes over it. */
export const CACHE_TEST_SETTINGS: CacheSettings = {
  maxBytes: 1_048_576,
  maxEntryBytes: 1_024,
  defaultTtlMs: undefined,
  methods: ['GET', 'HEAD'],
  statuses: [200],
  cacheStatusHeader: 'x-cache-status',
  useStale: USE_STALE_NOT_CONFIGURED,
  lockTimeoutMs: undefined,
  convertHead: true,
  backgroundUpdateTimeoutMs: undefined,
};

let names = 0;

/** The cache status header and body of an answer, to compare at once. */
export const statusAndBody = (response: TestResponse) => [response.headers['x-cache-status'], response.body.toString()];

/**
 * For tests: a cache (with `settings` over `CACHE_TEST_SETTINGS`) in front of the real proxy and a
 * real backend that holds every request until the test answers it (`answer(n)`: a `max-age=60`
 * answer unless told, its body the request's number), counting the requests it holds at once
 * (`maxActive`). With `clock`, http-cache-semantics' clock (Date) is the test's (`later`); `before`, middleware in front of the cache.
 */
export async function heldBackendCache(settings: Partial<CacheSettings>, options: { policy?: ProxyPolicy; clock?: boolean; before?: Middleware[] } = {}) {
  if (options.clock === true) vi.useFakeTimers({ toFake: ['Date'] });
  const held: ServerResponse[] = [];
  /** Requests the backend holds now, the most it held at once, and when (`performance.now()`) each arrived. */
  const load = { active: 0, maxActive: 0, arrivals: [] as number[] };
  const backend = createServer((request, response) => {
    request.resume();
    held.push(response);
    load.arrivals.push(performance.now());
    load.active += 1;
    load.maxActive = Math.max(load.maxActive, load.active);
    response.once('close', () => (load.active -= 1));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const balancer = singleInstanceBalancer('http', (backend.address() as AddressInfo).port, 'round-robin');
  const transports = new UpstreamTransports();
  const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => options.policy ?? TEST_PROXY_POLICY, transports });
  const name = `held-${(names += 1)}`;
  const server = await serveMiddleware([...(options.before ?? []), cache({ ...CACHE_TEST_SETTINGS, ...settings }, name)], servingCachedHits(proxy));
  return {
    held,
    load,
    send: server.send,
    port: server.port,
    contexts: server.contexts,
    /** Lets the backend's `n`th request (from 1) have its answer: `status` (200) with `headers` (`max-age=60`), its body `request n`. */
    answer: (n: number, headers: OutgoingHttpHeaders = { 'cache-control': 'max-age=60' }, status = 200) =>
      held[n - 1]!.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(`request ${n}`),
    /** Moves http-cache-semantics' clock on (with `clock`). */
    later: (ms: number) => vi.setSystemTime(Date.now() + ms),
    /** The cache's `switchboard_cache_requests_total` for `status`. */
    count: async (status: string) => (await cacheRequestsTotal.get()).values.find((value) => value.labels.middleware === name && value.labels.status === status)?.value ?? 0,
    close: async () => {
      if (options.clock === true) vi.useRealTimers();
      for (const response of held) response.destroy();
      await server.close();
      balancer.close();
      await transports.close(0);
      backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
    },
  };
}
