import { afterEach, describe, expect, it } from 'vitest';
import type { Middleware } from '../../context.ts';
import { overTls, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { redirectRegex } from './index.ts';


const TO_APEX = { regex: '^(https?)://www\\.(example\\.com)(?::\\d+)?(/.*)$', replacement: '$1://$2$3', permanent: true };

describe('redirectRegex', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it.each([
    ['GET', true, 301],
    ['HEAD', false, 302],
    ['POST', true, 308],
    ['PUT', false, 307],
  ] as const)('redirects a matching %s (permanent %s) to the URL with the match replaced, as %i', async (method, permanent, status) => {
    server = await serveMiddleware([redirectRegex({ ...TO_APEX, permanent })]);
    const response = await server.send('/a/b?x=1&y=%20', { method, headers: { host: 'www.example.com:8080' } });
    expect([response.status, response.headers.location]).toEqual([status, 'http://example.com/a/b?x=1&y=%20']);
    expect(server.contexts[0]!.outcome.status).toBe(status);
  });

  it('matches the scheme the request came on, the Host with its port, and the path and query the client sent', async () => {
    const rewrites: Middleware = async (context, next) => {
      context.upstream.path = '/internal';
      await next();
    };
    const seen = { regex: '^(https)://shop\\.test:8443/old/(?<rest>.*)$', replacement: 'https://shop.test/new/$<rest>', permanent: false };
    server = await serveMiddleware([overTls, rewrites, redirectRegex(seen)]);
    const response = await server.send('/old/item?id=7', { headers: { host: 'shop.test:8443' } });
    expect([response.status, response.headers.location]).toEqual([302, 'https://shop.test/new/item?id=7']);
  });

  it('passes through a request that does not match, one the replacement leaves as it was, and one whose Host is no host name', async () => {
    server = await serveMiddleware([redirectRegex({ regex: '^http://a\\.test/(old|same)', replacement: 'http://a.test/$1', permanent: true })]);
    expect((await server.send('/new', { headers: { host: 'a.test' } })).status).toBe(200);
    // The same URL again would redirect to itself forever.
    expect((await server.send('/same', { headers: { host: 'a.test' } })).status).toBe(200);
    await server.close();
    server = await serveMiddleware([redirectRegex({ regex: '.*', replacement: 'https://b.test/', permanent: true })]);
    const odd = await server.send('/', { headers: { host: 'evil.test/@other' } });
    expect([odd.status, odd.headers.location]).toEqual([200, undefined]);
    expect((await server.send('/', { headers: { host: 'a.test' } })).headers.location).toBe('https://b.test/');
  });
});
