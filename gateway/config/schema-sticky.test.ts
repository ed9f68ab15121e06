import { describe, expect, it } from 'vitest';
import { DEFAULT_STICKY_COOKIE } from './defaults.ts';
import { parseConfig } from './load.ts';
import { serviceBalancerOptions, serviceSettings, stickyCookieName, upstreamPolicy } from './convert.ts';
import { expectRefused } from './config-testing.ts';

const stickyOf = (text: string, service = 'a') => parseConfig('g.yaml', text).services.get(service)!.sticky;

describe('services.<name>.sticky', () => {
  it.each([
    ['services:\n  a: {}', false],
    ['services:\n  a: { sticky: true }', { cookie: DEFAULT_STICKY_COOKIE }],
    ['services:\n  a: { sticky: {} }', { cookie: DEFAULT_STICKY_COOKIE }],
    [
      'services:\n  a: { sticky: { cookie: { name: route, path: /app, maxAge: 1h, secure: true, httpOnly: false, sameSite: none } } }',
      { cookie: { name: 'route', path: '/app', maxAgeSeconds: 3_600, secure: true, httpOnly: false, sameSite: 'none' } },
    ],
    ['defaults: { sticky: { cookie: { name: srv } } }\nservices:\n  a: {}', { cookie: { ...DEFAULT_STICKY_COOKIE, name: 'srv' } }],
    ['defaults: { sticky: { cookie: { name: srv } } }\nservices:\n  a: { sticky: { cookie: { maxAge: 90s } } }', { cookie: { ...DEFAULT_STICKY_COOKIE, name: 'srv', maxAgeSeconds: 90 } }],
    ['defaults: { sticky: true }\nservices:\n  a: { sticky: false }', false],
  ] as const)('resolves %j', (text, expected) => {
    expect(stickyOf(text)).toEqual(expected);
  });

  it('gives the balancer the service name as salt and the proxy the cookie, only when sticky is on', () => {
    const config = parseConfig('g.yaml', 'services:\n  a: { sticky: true }\n  b: {}');
    expect(serviceBalancerOptions(config.services.get('a')!, 'a').stickySalt).toBe('a');
    expect(serviceBalancerOptions(config.services.get('b')!, 'b').stickySalt).toBeUndefined();
    expect(upstreamPolicy(config.services.get('a')!, undefined, 'a').sticky).toEqual({ ...DEFAULT_STICKY_COOKIE, name: stickyCookieName('a') });
    expect(upstreamPolicy(config.services.get('b')!, undefined, 'b').sticky).toBeUndefined();
  });

  it("names each service's cookie apart unless the configuration names it, so two sticky services on one site keep both", () => {
    const config = parseConfig('g.yaml', 'defaults: { sticky: true }\nservices:\n  cart: {}\n  search: { sticky: { cookie: { name: shared } } }');
    const nameOf = (service: string) => upstreamPolicy(serviceSettings(config, service), undefined, service).sticky?.name;
    expect(nameOf('cart')).toMatch(/^sb_sticky_[0-9a-f]{8}$/);
    // A service the configuration does not list (found in a registry) takes the defaults, and still a name of its own.
    expect(new Set([nameOf('cart'), nameOf('orders')]).size).toBe(2);
    expect(nameOf('cart')).toBe(stickyCookieName('cart'));
    expect(nameOf('search')).toBe('shared');
  });

  it.each([
    ['services:\n  a: { sticky: yes }', 'services.a.sticky (line 2): expected true, false or { cookie: { name, path, maxAge, secure, httpOnly, sameSite } }'],
    ['services:\n  a: { sticky: { name: x } }', 'services.a.sticky'],
    ['services:\n  a: { sticky: { cookie: { name: "a b" } } }', 'services.a.sticky.cookie.name (line 2): is not a valid cookie name'],
    ['services:\n  a: { sticky: { cookie: { path: app } } }', 'services.a.sticky.cookie.path (line 2): expected a path starting with /'],
    ['services:\n  a: { sticky: { cookie: { path: "/a;b" } } }', 'services.a.sticky.cookie.path (line 2)'],
    ['services:\n  a: { sticky: { cookie: { maxAge: 500ms } } }', 'services.a.sticky.cookie.maxAge (line 2): must be at least 1s'],
    ['services:\n  a: { sticky: { cookie: { sameSite: loose } } }', 'services.a.sticky.cookie.sameSite (line 2)'],
    ['services:\n  a: { sticky: { cookie: { sameSite: none } } }', 'services.a.sticky.cookie.sameSite (line 2): sameSite: none needs secure: true'],
    ['defaults: { sticky: { cookie: { sameSite: none, secure: true } } }\nservices:\n  a: { sticky: { cookie: { secure: false } } }', 'services.a.sticky.cookie.secure (line 3): sameSite: none needs secure: true'],
    ['entryPoints:\n  db: { listen: 5432, protocol: tcp, service: a }\nservices:\n  a: { sticky: true }', 'services.a.sticky (line 4): a tcp entry point forwards this service bytes'],
  ])('refuses %j with "%s"', (text, expected) => {
    expectRefused(text, expected);
  });
});
