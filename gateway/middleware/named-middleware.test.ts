import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import type { MiddlewareConfig } from '../config/types.ts';
import type { Middleware } from '../context.ts';
import { whenRetired } from './middleware-retire.ts';
import { canonicalJson, NamedMiddlewareRegistry } from './named-middleware.ts';

const BASE = `
middlewares:
  limit: { rateLimit: { average: 1, period: 1h, burst: 3 } }
  hsts: { hsts: { maxAge: 1y } }
routes:
  - { path: /a, service: a, middlewares: [limit, hsts] }
`;

/** A registry whose factory records each build and each retirement, so a test can tell reuse from rebuild. */
function countingRegistry() {
  const built: string[] = [];
  const retired: string[] = [];
  const registry = new NamedMiddlewareRegistry((definition: MiddlewareConfig, name: string) => {
    built.push(definition.kind);
    const middleware: Middleware = async (_context, next) => next();
    whenRetired(middleware, () => retired.push(name));
    return middleware;
  });
  return { registry, built, retired, apply: (text: string) => registry.update(parseConfig('gateway.yaml', text).middlewares) };
}

describe('NamedMiddlewareRegistry', () => {
  it('keeps the same instances across a reload that changes only routes and services', () => {
    const { registry, built, apply } = countingRegistry();
    apply(BASE);
    const [limit, hsts] = registry.resolve(['limit', 'hsts']);
    apply(`${BASE}  - { path: /b, service: b }\nservices:\n  b: { instances: [127.0.0.1:1] }\n`);
    expect(registry.resolve(['limit', 'hsts'])).toEqual([limit, hsts]);
    expect(registry.get('limit')).toBe(limit);
    expect(built).toEqual(['rateLimit', 'hsts']);
  });

  it('keeps an instance when its settings are written differently but mean the same', () => {
    const { registry, apply } = countingRegistry();
    apply(BASE);
    const limit = registry.get('limit');
    apply(BASE.replace('{ average: 1, period: 1h, burst: 3 }', '{ burst: 3, period: 60m, average: 1, key: client-ip }'));
    expect(registry.get('limit')).toBe(limit);
  });

  it('rebuilds only the middleware whose own settings changed', () => {
    const { registry, built, apply } = countingRegistry();
    apply(BASE);
    const [limit, hsts] = registry.resolve(['limit', 'hsts']);
    apply(BASE.replace('burst: 3', 'burst: 5'));
    expect(registry.get('limit')).not.toBe(limit);
    expect(registry.get('hsts')).toBe(hsts);
    expect(built).toEqual(['rateLimit', 'hsts', 'rateLimit']);
  });

  it('retires each instance it replaces or drops, once, and none it keeps', () => {
    const { retired, apply } = countingRegistry();
    apply(BASE);
    apply(`${BASE}  - { path: /b, service: a }\n`);
    expect(retired).toEqual([]);
    apply(BASE.replace('burst: 3', 'burst: 5'));
    expect(retired).toEqual(['limit']);
    apply('middlewares:\n  hsts: { hsts: { maxAge: 1y } }\n');
    expect(retired).toEqual(['limit', 'limit']);
    apply('middlewares:\n  hsts: { hsts: { maxAge: 2y } }\n');
    expect(retired).toEqual(['limit', 'limit', 'hsts']);
  });

  it('drops a middleware no longer declared, so declaring it again starts fresh', () => {
    const { registry, apply } = countingRegistry();
    apply(BASE);
    const limit = registry.get('limit');
    apply('middlewares:\n  hsts: { hsts: { maxAge: 1y } }\n');
    expect(registry.get('limit')).toBeUndefined();
    expect(() => registry.resolve(['limit'])).toThrow('unknown middleware "limit"');
    apply(BASE);
    expect(registry.get('limit')).not.toBe(limit);
  });

  it('keeps what it had when a factory throws', () => {
    let fail = false;
    const registry = new NamedMiddlewareRegistry(() => {
      if (fail) throw new Error('cannot build');
      return async (_context, next) => next();
    });
    registry.update(parseConfig('gateway.yaml', BASE).middlewares);
    const limit = registry.get('limit');
    fail = true;
    expect(() => registry.update(parseConfig('gateway.yaml', BASE.replace('burst: 3', 'burst: 4')).middlewares)).toThrow('cannot build');
    expect(registry.get('limit')).toBe(limit);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }));
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });
});
