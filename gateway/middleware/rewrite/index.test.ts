import { afterEach, describe, expect, it } from 'vitest';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { rewrite, rewritePath } from './index.ts';

describe('rewrite', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('rewrites the upstream path with numbered groups and keeps the query', async () => {
    server = await serveMiddleware([rewrite({ pattern: '^/v(\\d+)/users/(\\w+)$', replacement: '/api/users/$2?version=$1' })]);
    expect(echoed(await server.send('/v2/users/ada?fields=name')).path).toBe('/api/users/ada?version=2&fields=name');
  });

  it('refuses with 400 a request the rewrite would turn into a path with a dot segment, and passes its neighbours', async () => {
    server = await serveMiddleware([rewrite({ pattern: '^/api/([^/]+)\\.json$', replacement: '/data/$1/public' })]);
    for (const path of ['/api/...json', '/api/..json', '/api/...json?x=1']) {
      const answer = await server.send(path);
      expect(answer.status, path).toBe(400);
      expect(JSON.parse(answer.body.toString()).error).toBe('rewritten-dot-segment');
    }
    expect(echoed(await server.send('/api/....json')).path).toBe('/data/.../public');
    expect(echoed(await server.send('/api/report.json?x=..')).path).toBe('/data/report/public?x=..');
  });

  it('refuses a dot segment in what it writes whoever wrote it, the client\'s own included (it expects a normalised path)', async () => {
    server = await serveMiddleware([rewrite({ pattern: '^/api/(.*)\\.json$', replacement: '/data/$1/public' }), rewrite({ pattern: '^/old/', replacement: '/new/' })]);
    // `/data/./../public`: it passed, since the path held a dot segment before, and the router made `/public` of it.
    for (const path of ['/api/./...json', '/old/x/../y']) {
      const answer = await server.send(path);
      expect(answer.status, path).toBe(400);
      expect(JSON.parse(answer.body.toString()).error).toBe('rewritten-dot-segment');
    }
  });

  it('refuses a dot segment its replacement spells with %2E, which the router and many upstreams decode before resolving', async () => {
    server = await serveMiddleware([rewrite({ pattern: '^/reports/(.*)$', replacement: '/data/%2E%2E/$1' }), rewrite({ pattern: '^/old/', replacement: '/data/.%2e/' })]);
    for (const path of ['/reports/admin', '/old/admin']) {
      const answer = await server.send(path);
      expect(answer.status, path).toBe(400);
      expect(JSON.parse(answer.body.toString()).error).toBe('rewritten-dot-segment');
    }
  });

  it('leaves a path the pattern does not match alone', async () => {
    server = await serveMiddleware([rewrite({ pattern: '^/legacy', replacement: '/modern' })]);
    expect(echoed(await server.send('/current/x?y=1')).path).toBe('/current/x?y=1');
  });
});

describe('rewritePath', () => {
  it.each([
    ['/old/page', /^\/old/, '/new', '/new/page'],
    ['/old/page?x=1', /^\/old/, '/new', '/new/page?x=1'],
    ['/users/42', /^\/users\/(?<id>\d+)$/, '/people/$<id>', '/people/42'],
    ['/strip/me', /^\/strip/, '', '/me'],
    ['/a/a/a', /a/g, 'b', '/b/b/b'],
    ['/search', /^\/search$/, '/find?q=all', '/find?q=all'],
  ])('rewrites %s with %s and "%s" to %s', (path, pattern, replacement, expected) => {
    expect(rewritePath(path, pattern, replacement)).toBe(expected);
  });

  it('does not carry state between calls with a global regex', () => {
    const pattern = /x/g;
    expect(rewritePath('/x', pattern, 'y')).toBe('/y');
    expect(rewritePath('/x', pattern, 'y')).toBe('/y');
  });
});
