import { describe, expect, it } from 'vitest';
import { checkStoreObject } from './store-writer-validate.ts';

describe('checkStoreObject', () => {
  it('accepts a route and stores it as written with its id as name', () => {
    expect(checkStoreObject('routes', 'x', { path: '/x', service: 'user', timeouts: { headers: '2s' } })).toEqual({ ok: true, value: { name: 'x', path: '/x', service: 'user', timeouts: { headers: '2s' } } });
  });

  it.each([
    ['routes', 'x', { path: 'no-slash', service: 'user' }, 'routes[x].path'],
    ['routes', 'x', { path: '/x' }, 'routes[x].service'],
    ['routes', 'x', { name: 'y', service: 'user' }, 'routes[x].name'],
    ['routes', 'x', { service: 'user', pathh: '/x' }, 'routes[x].pathh'],
    ['services', 'user', { balancer: 'nope' }, 'services.user.balancer'],
    ['middlewares', 'limit', { rateLimit: { average: -1 } }, 'middlewares.limit.rateLimit.average'],
    ['middlewares', 'chaos', { fault: { abort: { status: 503, percentage: 150 } } }, 'middlewares.chaos.fault.abort.percentage'],
    ['middlewares', 'chaos', { fault: { maxActive: 5 } }, 'middlewares.chaos.fault'],
    ['middlewares', 'pages', { errors: { pages: { '3xx': '/srv/3xx.html' } } }, 'middlewares.pages.errors.pages.3xx'],
    ['middlewares', 'pages', { errors: { pages: { '5xx': '/srv/a.html', '500-599': '/srv/b.html' } } }, 'middlewares.pages.errors.pages.500-599'],
    ['middlewares', 'memory', { cache: { maxSize: '1MiB', maxEntrySize: '2MiB' } }, 'middlewares.memory.cache.maxEntrySize'],
    ['middlewares', 'memory', { cache: { maxEntrySize: '128MiB' } }, 'middlewares.memory.cache.maxEntrySize'],
    ['middlewares', 'memory', { cache: { methods: ['POST'] } }, 'middlewares.memory.cache.methods'],
    ['consumers', 'alice', { keys: ['plain-text-key'] }, 'consumers.alice.keys.0'],
    ['certificates', 'shop', { certFile: '/etc/shop.pem' }, 'certificates.shop.keyFile'],
    ['certificates', 'shop', { certFile: 'certs/shop.pem', keyFile: '/etc/shop-key.pem' }, 'certificates.shop.certFile'],
    ['certificates', 'shop', { certFile: '/etc/shop.pem', keyFile: 'shop-key.pem' }, 'certificates.shop.keyFile'],
  ] as const)('refuses an invalid %s object %s at the path the file would show (%s)', (kind, name, value, path) => {
    const check = checkStoreObject(kind, name, value);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.issues.map((issue) => issue.path)).toContain(path);
  });

  it('suggests the known key for a misspelt one, as the file check does', () => {
    const check = checkStoreObject('routes', 'x', { service: 'user', pathh: '/x' });
    expect(check.ok || check.issues[0]!.reason).toContain('did you mean "path"');
  });

  it('accepts a certificate by reference with absolute paths, and says why a relative one is refused', () => {
    const value = { certFile: '/etc/switchboard/shop.pem', keyFile: '/etc/switchboard/shop-key.pem', entryPoints: ['websecure'] };
    expect(checkStoreObject('certificates', 'shop', value)).toEqual({ ok: true, value });
    const relative = checkStoreObject('certificates', 'shop', { ...value, certFile: 'shop.pem' });
    expect(relative.ok || relative.issues[0]!.reason).toContain('must be absolute');
  });

  it('accepts a fault middleware as written, and gives the file check\'s reason for one that injects nothing', () => {
    const value = { fault: { delay: { duration: '200ms', percentage: 50 }, abort: { status: 503, percentage: 0.5 } } };
    expect(checkStoreObject('middlewares', 'chaos', value)).toEqual({ ok: true, value });
    const empty = checkStoreObject('middlewares', 'chaos', { fault: {} });
    expect(empty.ok || empty.issues[0]!.reason).toContain('injects nothing: give abort, delay or both');
  });

  it('accepts a service declared with no settings (null), as the file allows', () => {
    expect(checkStoreObject('services', 'user', null)).toEqual({ ok: true, value: null });
  });
});
