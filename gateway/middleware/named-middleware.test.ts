import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import type { MiddlewareConfig, RedisSettings } from '../config/types.ts';
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
  const redisOfBuild: (RedisSettings | undefined)[] = [];
  const registry = new NamedMiddlewareRegistry((definition: MiddlewareConfig, name: string, redis: RedisSettings | undefined) => {
    built.push(definition.kind);
    redisOfBuild.push(redis);
    const middleware: Middleware = async (_context, next) => next();
    whenRetired(middleware, () => retired.push(name));
    return middleware;
  });
  return { registry, built, retired, redisOfBuild, apply: (text: string, path = 'gateway.yaml') => registry.update(parseConfig(path, text)) };
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

  it('builds a policy: redis limit against the redis section, and anew (only it) when that section or its password file changes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-named-redis-'));
    try {
      const path = join(dir, 'gateway.yaml');
      const text = `redis: { url: "redis://127.0.0.1:6379", auth: { passwordFile: redis.password } }
middlewares:
  limit: { rateLimit: { average: 1, policy: redis } }
  hsts: { hsts: { maxAge: 1y } }
  local: { rateLimit: { average: 1 } }
`;
      const { registry, redisOfBuild, apply } = countingRegistry();
      writeFileSync(join(dir, 'redis.password'), 'first\n');
      apply(text, path);
      const [limit, hsts, local] = registry.resolve(['limit', 'hsts', 'local']);
      expect(redisOfBuild.map((redis) => redis?.credentials?.login()?.password)).toEqual(['first', undefined, undefined]);
      // Reloaded unchanged: every instance is kept.
      apply(text, path);
      expect(registry.resolve(['limit', 'hsts', 'local'])).toEqual([limit, hsts, local]);
      // The password file rotated: the Redis limit is rebuilt with the new password, the others kept.
      writeFileSync(join(dir, 'redis.password'), 'second\n');
      apply(text, path);
      expect(registry.get('limit')).not.toBe(limit);
      expect(registry.resolve(['hsts', 'local'])).toEqual([hsts, local]);
      expect(redisOfBuild.map((redis) => redis?.credentials?.login()?.password)).toEqual(['first', undefined, undefined, 'second']);
      // Another keyPrefix: rebuilt again, with the section as loaded.
      const moved = registry.get('limit');
      apply(text.replace('auth:', 'keyPrefix: "b:", auth:'), path);
      expect(registry.get('limit')).not.toBe(moved);
      expect(redisOfBuild.at(-1)).toMatchObject({ keyPrefix: 'b:' });
      expect(registry.resolve(['hsts', 'local'])).toEqual([hsts, local]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps what it had when a factory throws', () => {
    let fail = false;
    const registry = new NamedMiddlewareRegistry(() => {
      if (fail) throw new Error('cannot build');
      return async (_context, next) => next();
    });
    registry.update(parseConfig('gateway.yaml', BASE));
    const limit = registry.get('limit');
    fail = true;
    expect(() => registry.update(parseConfig('gateway.yaml', BASE.replace('burst: 3', 'burst: 4')))).toThrow('cannot build');
    expect(registry.get('limit')).toBe(limit);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }));
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
  });
});
