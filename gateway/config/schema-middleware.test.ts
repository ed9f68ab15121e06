import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { expectRefused } from './config-testing.ts';


const ROUTE = 'routes:\n  - { path: /api, service: api, middlewares: [limit] }\n';

const LOCAL = { ipv6Subnet: 64, policy: 'local', onRedisError: 'local', statusOnRedisError: 503, delay: undefined, quota: undefined } as const;
const REDIS = { target: { kind: 'url', url: 'redis://127.0.0.1:6379/2' }, password: undefined, timeoutMs: 100, keyPrefix: 'gw:', gateways: 3 } as const;

describe('middlewares', () => {
  it('resolves every kind with its defaults and keeps the route references in order', () => {
    const config = parseConfig(
      'gateway.yaml',
      `middlewares:
  limit: { rateLimit: { average: 2.5 } }
  by-network: { rateLimit: { average: 1, ipv6Subnet: 48 } }
  limit-by-key: { rateLimit: { average: 100, period: 1m, burst: 10, key: "header:X-Api-Key" } }
  by-tenant: { rateLimit: { average: 5, key: "claim:tenant", policy: redis, onRedisError: deny, statusOnRedisError: 500, delay: { maxWait: 250ms }, quota: { limit: 1000, per: day } } }
  to-https: { redirectScheme: { scheme: https, port: 8443 } }
  to-apex: { redirectRegex: { regex: '^https?://www\\.(example\\.com)(.*)$', replacement: "https://$1$2", permanent: true } }
  hsts: { hsts: { maxAge: 1y, includeSubDomains: true } }
  tag: { headers: { request: { set: { x-tag: a } }, host: upstream } }
  v2: { rewrite: { pattern: "^/v1/", replacement: /v2/ } }
  small-bodies: { bodyLimit: { maxSize: 1MiB } }
  per-client: { inFlightReq: { amount: 10 } }
  per-tenant: { inFlightReq: { amount: 3, key: "header:X-Tenant" } }
  zip: { compress: { encodings: [gzip], minSize: 2KiB, excludedContentTypes: [Image/*, application/*+Zip], level: 9 } }
  memory: { cache: {} }
  small-cache: { cache: { maxSize: 4MiB, maxEntrySize: 64KiB, defaultTtl: 30s, methods: [get], statuses: [200], cacheStatusHeader: X-Cache, useStale: { on: [error, http_503, updating], maxStale: 1h }, lock: { timeout: 2s }, backgroundUpdate: { timeout: 10s } } }
  quiet-cache: { cache: { cacheStatusHeader: false, useStale: false, convertHead: false } }
  stale-cache: { cache: { useStale: {}, lock: true, backgroundUpdate: true } }
routes:
  - { path: /api, service: api, middlewares: [hsts, limit] }
  - { path: /b, service: b }
redis: { url: "redis://127.0.0.1:6379/2", keyPrefix: "gw:", gateways: 3 }
`,
    );
    expect(Object.fromEntries(config.middlewares)).toEqual({
      limit: { kind: 'rateLimit', settings: { ...LOCAL, average: 2.5, periodMs: 1_000, burst: 3, key: { from: 'client-ip' } } },
      'by-network': { kind: 'rateLimit', settings: { ...LOCAL, average: 1, periodMs: 1_000, burst: 1, key: { from: 'client-ip' }, ipv6Subnet: 48 } },
      'limit-by-key': { kind: 'rateLimit', settings: { ...LOCAL, average: 100, periodMs: 60_000, burst: 10, key: { from: 'header', name: 'x-api-key' } } },
      'by-tenant': {
        kind: 'rateLimit',
        settings: { average: 5, periodMs: 1_000, burst: 5, key: { from: 'claim', name: 'tenant' }, ipv6Subnet: 64, policy: 'redis', onRedisError: 'deny', statusOnRedisError: 500, delay: { maxWaitMs: 250 }, quota: { limit: 1000, per: 'day' } },
      },
      'to-https': { kind: 'redirectScheme', settings: { scheme: 'https', port: 8443, permanent: false } },
      'to-apex': { kind: 'redirectRegex', settings: { regex: '^https?://www\\.(example\\.com)(.*)$', replacement: 'https://$1$2', permanent: true } },
      hsts: { kind: 'hsts', settings: { maxAgeMs: 365 * 86_400_000, includeSubDomains: true, preload: false } },
      tag: { kind: 'headers', settings: { request: { set: { 'x-tag': 'a' }, remove: [] }, response: undefined, host: 'upstream' } },
      v2: { kind: 'rewrite', settings: { pattern: '^/v1/', replacement: '/v2/' } },
      'small-bodies': { kind: 'bodyLimit', settings: { maxBytes: 1024 * 1024 } },
      'per-client': { kind: 'inFlightReq', settings: { amount: 10, key: { from: 'client-ip' }, ipv6Subnet: 64 } },
      'per-tenant': { kind: 'inFlightReq', settings: { amount: 3, key: { from: 'header', name: 'x-tenant' }, ipv6Subnet: 64 } },
      zip: { kind: 'compress', settings: { encodings: ['gzip'], minBytes: 2048, contentTypes: expect.arrayContaining(['text/*', 'application/json']), excludedContentTypes: ['image/*', 'application/*+zip'], level: 9 } },
      memory: {
        kind: 'cache',
        settings: { maxBytes: 64 * 1_048_576, maxEntryBytes: 1_048_576, defaultTtlMs: undefined, methods: ['GET', 'HEAD'], statuses: [200, 203, 204, 300, 301, 404, 410], cacheStatusHeader: 'x-cache-status', useStale: { on: [], maxStaleMs: 0, answerDirectives: true }, lockTimeoutMs: undefined, convertHead: true, backgroundUpdateTimeoutMs: undefined },
      },
      'small-cache': { kind: 'cache', settings: { maxBytes: 4 * 1_048_576, maxEntryBytes: 65_536, defaultTtlMs: 30_000, methods: ['GET'], statuses: [200], cacheStatusHeader: 'x-cache', useStale: { on: ['error', 'http_503', 'updating'], maxStaleMs: 3_600_000, answerDirectives: true }, lockTimeoutMs: 2_000, convertHead: true, backgroundUpdateTimeoutMs: 10_000 } },
      'quiet-cache': { kind: 'cache', settings: expect.objectContaining({ cacheStatusHeader: undefined, useStale: { on: [], maxStaleMs: 0, answerDirectives: false }, convertHead: false }) },
      'stale-cache': { kind: 'cache', settings: expect.objectContaining({ useStale: { on: ['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504'], maxStaleMs: 86_400_000, answerDirectives: true }, lockTimeoutMs: 5_000, backgroundUpdateTimeoutMs: 60_000 }) },
    });
    expect(config.routes.map((route) => route.middlewares)).toEqual([['hsts', 'limit'], []]);
    expect(config.redis).toEqual(REDIS);
  });

  it('takes a compress minSize of 0, which compresses every answer (a HEAD answer without Content-Length included), as the docs offer', () => {
    const config = parseConfig('gateway.yaml', 'middlewares:\n  zip-all: { compress: { minSize: 0 } }\n');
    expect(config.middlewares.get('zip-all')).toMatchObject({ kind: 'compress', settings: { minBytes: 0 } });
  });

  it('reads the redis section in its three forms, with defaults', () => {
    const redisOf = (text: string) => parseConfig('gateway.yaml', `redis: ${text}\n`).redis;
    expect(redisOf('{ url: "redis://h:6379" }')).toEqual({ target: { kind: 'url', url: 'redis://h:6379' }, password: undefined, timeoutMs: 100, keyPrefix: 'switchboard:', gateways: 1 });
    expect(redisOf('{ sentinels: ["s1:26379", "[::1]:26380"], name: main, password: pw, timeout: 50ms }')).toMatchObject({
      target: { kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: '::1', port: 26380 }], name: 'main' },
      password: 'pw',
      timeoutMs: 50,
    });
    expect(redisOf('{ cluster: ["n1:7000", "n2:7001"] }')).toMatchObject({ target: { kind: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }] } });
  });

  it('reads the files of redis.auth and sentinelAuth at load into the one redis section, which the policy: redis limits do not copy, without showing the password', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-redis-auth-'));
    try {
      writeFileSync(join(dir, 'redis.password'), 'master-secret\n');
      writeFileSync(join(dir, 'sentinel.password'), 'sentinel-secret\n');
      const config = parseConfig(
        join(dir, 'gateway.yaml'),
        'redis: { sentinels: ["s:26379"], name: m, auth: { username: gw, passwordFile: redis.password }, sentinelAuth: { passwordFile: sentinel.password } }\nmiddlewares:\n  l: { rateLimit: { average: 1, policy: redis } }\n',
      );
      expect(config.redis?.credentials?.login()).toEqual({ username: 'gw', password: 'master-secret' });
      expect(config.redis?.sentinelCredentials?.login()).toEqual({ password: 'sentinel-secret' });
      const limit = config.middlewares.get('l');
      expect(limit?.kind === 'rateLimit' && Object.keys(limit.settings)).not.toContain('redis');
      expect(JSON.stringify(config.redis)).not.toContain('secret"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [`${ROUTE}middlewares: { other: { hsts: { maxAge: 1d } } }`, 'routes.0.middlewares.0 (line 2): unknown middleware "limit" (declared: other)'],
    [ROUTE, 'routes.0.middlewares.0 (line 2): unknown middleware "limit" (no middlewares are declared)'],
    ['routes:\n  - { path: /a, service: a, middlewares: [constructor] }', 'routes.0.middlewares.0 (line 2): unknown middleware "constructor"'],
    ['middlewares:\n  empty: {}', 'middlewares.empty (line 2): a middleware has exactly one kind (rateLimit, redirectScheme, redirectRegex, respond, hsts, cors, headers, rewrite, bodyLimit, inFlightReq, compress, fault, errors, cache, grpcWeb, keyAuth, basicAuth, jwtAuth, ipAllowList, ipDenyList, forwardAuth); found none'],
    ['middlewares:\n  both: { hsts: { maxAge: 1s }, rateLimit: { average: 1 } }', 'middlewares.both (line 2): a middleware has exactly one kind (rateLimit, redirectScheme, redirectRegex, respond, hsts, cors, headers, rewrite, bodyLimit, inFlightReq, compress, fault, errors, cache, grpcWeb, keyAuth, basicAuth, jwtAuth, ipAllowList, ipDenyList, forwardAuth); found rateLimit and hsts'],
    ['middlewares:\n  l: { rateLimit: { average: 0 } }', 'middlewares.l.rateLimit.average (line 2): must be above 0'],
    ['middlewares:\n  b: { bodyLimit: { maxSize: 0 } }', 'middlewares.b.bodyLimit.maxSize (line 2)'],
    ['middlewares:\n  b: { bodyLimit: {} }', 'middlewares.b.bodyLimit.maxSize (line 2)'],
    ['middlewares:\n  r: { redirectRegex: { regex: "(", replacement: /x } }', 'middlewares.r.redirectRegex.regex (line 2): is not a valid regular expression'],
    ['middlewares:\n  r: { redirectRegex: { regex: "^http://(a+)+$", replacement: /x } }', 'middlewares.r.redirectRegex.regex (line 2):'],
    ['middlewares:\n  r: { redirectRegex: { regex: "^http://a", replacement: "https://b/\\n" } }', 'middlewares.r.redirectRegex.replacement (line 2): must not contain CR, LF or NUL'],
    ['middlewares:\n  r: { redirectRegex: { regex: "^http://a", replacement: "https://日本/" } }', 'middlewares.r.redirectRegex.replacement (line 2): must hold only tab, printable ASCII and Latin-1 characters'],
    ['middlewares:\n  f: { inFlightReq: { amount: 0 } }', 'middlewares.f.inFlightReq.amount (line 2)'],
    ['middlewares:\n  f: { inFlightReq: { amount: 2.5 } }', 'middlewares.f.inFlightReq.amount (line 2)'],
    ['middlewares:\n  f: { inFlightReq: { amount: 2, key: "header:X-T", ipv6Subnet: 56 } }', 'middlewares.f.inFlightReq.ipv6Subnet (line 2): applies only to key: client-ip'],
    ['middlewares:\n  f: { inFlightReq: { amount: 2, key: cookie } }', 'middlewares.f.inFlightReq.key (line 2): expected client-ip, route, service, consumer, header:<name> or claim:<name>'],
    ['middlewares:\n  l: { rateLimit: { average: 1, key: cookie } }', 'middlewares.l.rateLimit.key (line 2): expected client-ip, route, service, consumer, header:<name> or claim:<name>'],
    ['redis: { url: "redis://a:1" }\nmiddlewares:\n  l: { rateLimit: { average: 1, policy: redis, onRedisError: deny, statusOnRedisError: 200 } }', 'middlewares.l.rateLimit.statusOnRedisError (line 3): must be 429 or a 5xx status (500 to 599)'],
    ['redis: { url: "redis://a:1" }\nmiddlewares:\n  l: { rateLimit: { average: 1, policy: redis, onRedisError: deny, statusOnRedisError: 404 } }', 'middlewares.l.rateLimit.statusOnRedisError (line 3): must be 429 or a 5xx status (500 to 599)'],
    ['redis: { url: "redis://a:1" }\nmiddlewares:\n  l: { rateLimit: { average: 1, policy: redis, statusOnRedisError: 500 } }', 'middlewares.l.rateLimit.statusOnRedisError (line 3): applies only with policy: redis and onRedisError: deny'],
    // A local limit never asks Redis: settings for its absence would do nothing, so they are refused, not taken silently.
    ['middlewares:\n  l: { rateLimit: { average: 1, onRedisError: allow } }', "middlewares.l.rateLimit.onRedisError (line 2): applies only with policy: redis (what the limit does while Redis is away); this limit's policy is local (the default)"],
    ['middlewares:\n  l: { rateLimit: { average: 1, policy: local, onRedisError: local } }', "middlewares.l.rateLimit.onRedisError (line 2): applies only with policy: redis (what the limit does while Redis is away); this limit's policy is local,"],
    ['middlewares:\n  l: { rateLimit: { average: 1, policy: local, onRedisError: deny, statusOnRedisError: 503 } }', 'middlewares.l.rateLimit.statusOnRedisError (line 2): applies only with policy: redis and onRedisError: deny'],
    ['redis: { url: "redis://a:1" }\nmiddlewares:\n  l: { rateLimit: { average: 1, statusOnRedisError: 503 } }', 'middlewares.l.rateLimit.statusOnRedisError (line 3): applies only with policy: redis and onRedisError: deny'],
    ['middlewares:\n  l: { rateLimit: { average: 1, policy: redis } }', 'middlewares.l.rateLimit.policy (line 2): policy redis needs the top-level redis: section'],
    ['middlewares:\n  l: { rateLimit: { average: 1, quota: { limit: 5, per: week } } }', 'middlewares.l.rateLimit.quota.per (line 2)'],
    ['redis: { url: "redis://a:1", cluster: ["b:2"] }', 'set exactly one of url, sentinels (with name) or cluster; found url and cluster'],
    ['redis: { sentinels: ["a:1"] }', 'redis.name (line 1): the master name is required with sentinels'],
    ['redis: { cluster: ["no-port"] }', 'redis.cluster.0 (line 1): expected host:port'],
    ['redis: { url: "http://a:1" }', 'redis.url (line 1): expected redis://host:port[/db]'],
    ['redis: { url: "redis://a:1", password: pw, auth: { passwordFile: /nonexistent } }', 'redis.auth (line 1): set the password once'],
    ['redis: { url: "redis://:pw@a:1", auth: { passwordFile: /nonexistent } }', 'redis.auth (line 1): set the password once'],
    ['redis: { url: "redis://a:1/0?password=pw", auth: { passwordFile: /nonexistent } }', 'redis.auth (line 1): set the password once'],
    ['redis: { url: "redis://a:1/0?db=1&username=u", auth: { passwordFile: /nonexistent } }', 'redis.auth (line 1): set the password once'],
    ['redis: { url: "redis://a:1", sentinelAuth: { passwordFile: /nonexistent } }', 'redis.sentinelAuth (line 1): sentinelAuth goes with sentinels'],
    ['redis: { url: "redis://:pw@a:1", tls: { caFile: /nonexistent } }', 'redis.tls (line 1): tls needs a rediss:// url (TLS); redis://***@a:1 is plain redis://'],
    ['redis: { url: "rediss://a:1", tls: { caFile: /nonexistent/ca.pem } }', 'redis.tls.caFile (line 1): cannot read /nonexistent/ca.pem (ENOENT)'],
    ['redis: { url: "rediss://a:1", tls: { certFile: /nonexistent/c.pem } }', 'redis.tls.certFile (line 1): certFile and keyFile go together'],
    ['redis: { sentinels: ["a:1"], name: m, sentinelAuth: { passwordFile: /nonexistent/s } }', 'redis.sentinelAuth.passwordFile (line 1): cannot read /nonexistent/s (ENOENT)'],
    ['middlewares:\n  l: { rateLimit: { average: 1, period: 0s } }', 'middlewares.l.rateLimit.period (line 2): must be above 0'],
    ['middlewares:\n  l: { rateLimit: { average: 1, ipv6Subnet: 0 } }', 'middlewares.l.rateLimit.ipv6Subnet (line 2): expected a prefix length from 1 to 128'],
    ['middlewares:\n  l: { rateLimit: { average: 1, ipv6Subnet: 129 } }', 'middlewares.l.rateLimit.ipv6Subnet (line 2): expected a prefix length from 1 to 128'],
    ['middlewares:\n  l: { rateLimit: { average: 1, ipv6Subnet: 64.5 } }', 'middlewares.l.rateLimit.ipv6Subnet (line 2): expected a prefix length from 1 to 128'],
    ['middlewares:\n  l: { rateLimit: { average: 1, ipv6Subnet: "/64" } }', 'middlewares.l.rateLimit.ipv6Subnet (line 2): expected a prefix length from 1 to 128'],
    ['middlewares:\n  l: { rateLimit: { average: 1, key: route, ipv6Subnet: 64 } }', 'middlewares.l.rateLimit.ipv6Subnet (line 2): applies only to key: client-ip'],
    ['middlewares:\n  r: { redirectScheme: { scheme: ftp } }', 'middlewares.r.redirectScheme.scheme (line 2)'],
    ['middlewares:\n  h: { hsts: { maxAge: 1y, subdomains: true } }', 'middlewares.h.hsts.subdomains (line 2): unknown field "subdomains"'],
    ['middlewares:\n  "bad name": { hsts: { maxAge: 1y } }', 'middlewares.bad name (line 2): "bad name": expected letters, digits, "-", "_" or "." (starting with a letter or digit)'],
    ['middlewares:\n  c: { compress: { contentTypes: [text/*], excludedContentTypes: [image/png] } }', 'middlewares.c.compress.excludedContentTypes (line 2): cannot go with contentTypes'],
    ['middlewares:\n  c: { compress: { encodings: [gzip, br, gzip] } }', 'middlewares.c.compress.encodings (line 2): lists a coding twice'],
    ['middlewares:\n  c: { compress: { encodings: [zstd] } }', 'middlewares.c.compress.encodings.0 (line 2)'],
    ['middlewares:\n  c: { compress: { encodings: [] } }', 'middlewares.c.compress.encodings (line 2)'],
    ['middlewares:\n  c: { compress: { level: 10 } }', 'middlewares.c.compress.level (line 2)'],
    ['middlewares:\n  c: { compress: { minSize: -1 } }', 'middlewares.c.compress.minSize (line 2)'],
    ['middlewares:\n  c: { compress: { contentTypes: ["text/html; charset=utf-8"] } }', 'middlewares.c.compress.contentTypes.0 (line 2): expected a media type such as application/json'],
    ['middlewares:\n  c: { compress: { contentTypes: ["application/*+"] } }', 'middlewares.c.compress.contentTypes.0 (line 2): expected a media type such as application/json'],
    ['middlewares:\n  c: { compress: { contentTypes: ["application/*json"] } }', 'middlewares.c.compress.contentTypes.0 (line 2): expected a media type such as application/json'],
    ['middlewares:\n  c: { compress: { gzip: true } }', 'middlewares.c.compress.gzip (line 2): unknown field "gzip"'],
    ['middlewares:\n  e: { errors: { pages: {} } }', 'middlewares.e.errors.pages (line 2): expected at least one page'],
    ['middlewares:\n  e: { errors: { pages: { "600": /p.html } } }', 'middlewares.e.errors.pages.600 (line 2): "600": expected a status (502), a class (5xx) or a range (500-599), within 400-599'],
    ['middlewares:\n  e: { errors: { pages: { "3xx": /p.html } } }', 'middlewares.e.errors.pages.3xx (line 2): "3xx": expected a status (502)'],
    ['middlewares:\n  e: { errors: { pages: { "200-299": /p.html } } }', 'middlewares.e.errors.pages.200-299 (line 2): "200-299": expected a status (502), a class (5xx) or a range (500-599), within 400-599 (1xx, 2xx and 3xx answers keep their bodies)'],
    ['middlewares:\n  e: { errors: { pages: { "599-500": /p.html } } }', 'middlewares.e.errors.pages.599-500 (line 2): "599-500": the range ends before it starts'],
    ['middlewares:\n  e: { errors: { pages: { "5xx": /p.html, "500-599": /q.html } } }', 'middlewares.e.errors.pages.500-599 (line 2): overlaps "5xx", which is as specific'],
    ['middlewares:\n  e: { errors: { pages: { "5xx": "" } } }', 'middlewares.e.errors.pages.5xx (line 2): expected the path of the page file'],
    ['middlewares:\n  e: { errors: { pages: { "5xx": /nonexistent/5xx.html } } }', 'middlewares.e.errors.pages.5xx (line 2): cannot read /nonexistent/5xx.html (ENOENT)'],
    ['middlewares:\n  e: { errors: { pages: { "5xx": /p.html }, status: ["500-599"] } }', 'middlewares.e.errors.status (line 2): unknown field "status"'],
    ['middlewares:\n  c: { cache: { maxSize: 1MiB, maxEntrySize: 2MiB } }', 'middlewares.c.cache.maxEntrySize (line 2): is above maxSize'],
    ['middlewares:\n  c: { cache: { maxEntrySize: 128MiB } }', 'middlewares.c.cache.maxEntrySize (line 2): is above maxSize'],
    ['middlewares:\n  c: { cache: { methods: [GET, POST] } }', 'middlewares.c.cache.methods (line 2): may hold only GET and HEAD'],
    ['middlewares:\n  c: { cache: { methods: [GET, get] } }', 'middlewares.c.cache.methods (line 2): lists a method twice'],
    ['middlewares:\n  c: { cache: { statuses: [200, 200] } }', 'middlewares.c.cache.statuses (line 2): lists a status twice'],
    ['middlewares:\n  c: { cache: { statuses: [99] } }', 'middlewares.c.cache.statuses.0 (line 2)'],
    ['middlewares:\n  c: { cache: { statuses: [200, 206] } }', 'middlewares.c.cache.statuses (line 2): may not hold 206'],
    ['middlewares:\n  c: { cache: { maxSize: 0 } }', 'middlewares.c.cache.maxSize (line 2)'],
    ['middlewares:\n  c: { cache: { defaultTtl: "60" } }', 'middlewares.c.cache.defaultTtl (line 2)'],
    ['middlewares:\n  c: { cache: { defaultTtl: 500ms } }', 'middlewares.c.cache.defaultTtl (line 2): must be at least 1s (freshness counts whole seconds)'],
    ['middlewares:\n  c: { cache: { cacheStatusHeader: "X Cache" } }', 'middlewares.c.cache.cacheStatusHeader (line 2)'],
    ['middlewares:\n  c: { cache: { strategy: disk } }', 'middlewares.c.cache.strategy (line 2): unknown field "strategy"'],
    ['middlewares:\n  c: { cache: { useStale: { on: [http_404] } } }', 'middlewares.c.cache.useStale.on.0 (line 2)'],
    ['middlewares:\n  c: { cache: { useStale: { on: [error, error] } } }', 'middlewares.c.cache.useStale.on (line 2): lists a failure twice'],
    ['middlewares:\n  c: { cache: { useStale: true } }', 'middlewares.c.cache.useStale (line 2)'],
    ['middlewares:\n  c: { cache: { lock: { timeout: 0 } } }', 'middlewares.c.cache.lock.timeout (line 2): must be more than 0'],
    ['middlewares:\n  c: { cache: { convertHead: "on" } }', 'middlewares.c.cache.convertHead (line 2)'],
    ['middlewares:\n  c: { cache: { backgroundUpdate: "on" } }', 'middlewares.c.cache.backgroundUpdate (line 2): expected true, false or { timeout }'],
    ['middlewares:\n  c: { cache: { backgroundUpdate: 20s } }', 'middlewares.c.cache.backgroundUpdate (line 2): expected true, false or { timeout }'],
    ['middlewares:\n  c: { cache: { backgroundUpdate: { timeout: soon } } }', 'middlewares.c.cache.backgroundUpdate.timeout (line 2): expected a duration'],
    ['middlewares:\n  c: { cache: { lock: 5s } }', 'middlewares.c.cache.lock (line 2): expected true, false or { timeout }'],
    ['middlewares:\n  c: { cache: { useStale: false, backgroundUpdate: true } }', 'middlewares.c.cache.backgroundUpdate (line 2): needs useStale'],
    ['middlewares:\n  c: { cache: { useStale: false, backgroundUpdate: { timeout: 5s } } }', 'middlewares.c.cache.backgroundUpdate (line 2): needs useStale'],
    ['middlewares:\n  c: { cache: { backgroundUpdate: { timeout: 0 } } }', 'middlewares.c.cache.backgroundUpdate.timeout (line 2): must be more than 0'],
    ['middlewares:\n  c: { cache: { methods: [GET], convertHead: true } }', 'middlewares.c.cache.convertHead (line 2): needs GET and HEAD in methods'],
    ['middlewares:\n  c: { cache: { methods: [HEAD], convertHead: true } }', 'middlewares.c.cache.convertHead (line 2): needs GET and HEAD in methods'],
  ])('refuses %j with "%s"', (text, expected) => {
    expectRefused(text, expected);
  });
});
