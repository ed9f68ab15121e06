import { describe, expect, it } from 'vitest';
import type { GatewayConfigError} from './load.ts';
import { parseConfig } from './load.ts';

function errorOf(text: string): GatewayConfigError {
  try {
    parseConfig('/etc/sb/gateway.yaml', text);
  } catch (error) {
    return error as GatewayConfigError;
  }
  throw new Error('the config was accepted');
}

const ROUTE = 'routes:\n  - { path: /api, service: api, middlewares: [limit] }\n';

describe('middlewares', () => {
  it('resolves every kind with its defaults and keeps the route references in order', () => {
    const config = parseConfig(
      'gateway.yaml',
      `middlewares:
  limit: { rateLimit: { average: 2.5 } }
  limit-by-key: { rateLimit: { average: 100, period: 1m, burst: 10, key: "header:X-Api-Key" } }
  to-https: { redirectScheme: { scheme: https, port: 8443 } }
  hsts: { hsts: { maxAge: 1y, includeSubDomains: true } }
  tag: { headers: { request: { set: { x-tag: a } }, host: upstream } }
  v2: { rewrite: { pattern: "^/v1/", replacement: /v2/ } }
routes:
  - { path: /api, service: api, middlewares: [hsts, limit] }
  - { path: /b, service: b }
`,
    );
    expect(Object.fromEntries(config.middlewares)).toEqual({
      limit: { kind: 'rateLimit', settings: { average: 2.5, periodMs: 1_000, burst: 3, key: { from: 'client-ip' } } },
      'limit-by-key': { kind: 'rateLimit', settings: { average: 100, periodMs: 60_000, burst: 10, key: { from: 'header', name: 'x-api-key' } } },
      'to-https': { kind: 'redirectScheme', settings: { scheme: 'https', port: 8443, permanent: false } },
      hsts: { kind: 'hsts', settings: { maxAgeMs: 365 * 86_400_000, includeSubDomains: true, preload: false } },
      tag: { kind: 'headers', settings: { request: { set: { 'x-tag': 'a' }, remove: [] }, response: undefined, host: 'upstream' } },
      v2: { kind: 'rewrite', settings: { pattern: '^/v1/', replacement: '/v2/' } },
    });
    expect(config.routes.map((route) => route.middlewares)).toEqual([['hsts', 'limit'], []]);
  });

  it.each([
    [`${ROUTE}middlewares: { other: { hsts: { maxAge: 1d } } }`, 'routes.0.middlewares.0 (line 2): unknown middleware "limit" (declared: other)'],
    [ROUTE, 'routes.0.middlewares.0 (line 2): unknown middleware "limit" (no middlewares are declared)'],
    ['routes:\n  - { path: /a, service: a, middlewares: [constructor] }', 'routes.0.middlewares.0 (line 2): unknown middleware "constructor"'],
    ['middlewares:\n  empty: {}', 'middlewares.empty (line 2): a middleware has exactly one kind (rateLimit, redirectScheme, hsts, headers, rewrite, keyAuth, jwtAuth, ipAllowList, ipDenyList, forwardAuth); found none'],
    ['middlewares:\n  both: { hsts: { maxAge: 1s }, rateLimit: { average: 1 } }', 'middlewares.both (line 2): a middleware has exactly one kind (rateLimit, redirectScheme, hsts, headers, rewrite, keyAuth, jwtAuth, ipAllowList, ipDenyList, forwardAuth); found rateLimit and hsts'],
    ['middlewares:\n  l: { rateLimit: { average: 0 } }', 'middlewares.l.rateLimit.average (line 2): must be above 0'],
    ['middlewares:\n  l: { rateLimit: { average: 1, key: cookie } }', 'middlewares.l.rateLimit.key (line 2): expected client-ip, route, service, consumer or header:<name>'],
    ['middlewares:\n  l: { rateLimit: { average: 1, period: 0s } }', 'middlewares.l.rateLimit.period (line 2): must be above 0'],
    ['middlewares:\n  r: { redirectScheme: { scheme: ftp } }', 'middlewares.r.redirectScheme.scheme (line 2)'],
    ['middlewares:\n  h: { hsts: { maxAge: 1y, subdomains: true } }', 'middlewares.h.hsts.subdomains (line 2): unknown field "subdomains"'],
    ['middlewares:\n  "bad name": { hsts: { maxAge: 1y } }', 'middlewares.bad name'],
  ])('refuses %j with "%s"', (text, expected) => {
    expect(errorOf(text).message).toContain(expected);
  });
});
