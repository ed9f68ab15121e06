import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RedirectSchemeSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { headers } from '../headers/index.ts';
import { overTls, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { redirectScheme } from './index.ts';

const TO_HTTPS: RedirectSchemeSettings = { scheme: 'https', port: undefined, permanent: true };


describe('redirectScheme', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it.each([
    ['GET', true, 301],
    ['HEAD', true, 301],
    ['POST', true, 308],
    ['GET', false, 302],
    ['DELETE', false, 307],
  ] as const)('answers %s with permanent %s as %i, so that only GET and HEAD may change method', async (method, permanent, status) => {
    server = await serveMiddleware([redirectScheme({ ...TO_HTTPS, permanent })]);
    const response = await server.send('/a/b?x=1&y=%20', { method, headers: { host: 'shop.example.com:8080' } });
    expect([response.status, response.headers.location]).toEqual([status, 'https://shop.example.com/a/b?x=1&y=%20']);
    expect(server.contexts[0]!.outcome.status).toBe(status);
  });

  it.each([
    [8443, 'https://[::1]:8443/p'],
    [443, 'https://[::1]/p'],
  ])('writes port %i only when it is not the default', async (port, location) => {
    server = await serveMiddleware([redirectScheme({ ...TO_HTTPS, port })]);
    expect((await server.send('/p', { headers: { host: '[::1]:8080' } })).headers.location).toBe(location);
  });

  it('redirects to the path the client sent, not the one a rewrite made for the upstream', async () => {
    const rewrites: Middleware = async (context, next) => {
      context.upstream.path = '/internal';
      await next();
    };
    server = await serveMiddleware([rewrites, redirectScheme(TO_HTTPS)]);
    expect((await server.send('/public?q', { headers: { host: 'a.test' } })).headers.location).toBe('https://a.test/public?q');
  });

  it('lets a request already on the scheme through', async () => {
    server = await serveMiddleware([overTls, redirectScheme(TO_HTTPS)]);
    expect((await server.send('/', { headers: { host: 'a.test' } })).status).toBe(200);
  });

  it('refuses a Host it cannot build a safe Location from, and says so', async () => {
    server = await serveMiddleware([redirectScheme(TO_HTTPS)]);
    const response = await server.send('/', { headers: { host: 'evil.test/@other' } });
    expect([response.status, response.headers.location]).toEqual([400, undefined]);
    expect(JSON.parse(response.body.toString('utf8'))).toMatchObject({ error: 'request-rejected', message: "the request's Host header is no host name a redirect can be built from" });
  });

  it('answers a request without a Host (HTTP/1.0) 400 with the reason: no host to redirect to', async () => {
    server = await serveMiddleware([redirectScheme(TO_HTTPS)]);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1', () => socket.end('GET /p HTTP/1.0\r\n\r\n'));
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'request-rejected', message: 'the request has no Host header, so there is no host to redirect it to' });
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 400, errorClass: 'request-rejected' });
  });

  it('lets the response header hooks of the layers before it edit the redirect, and answers 500 internal when one fails it', async () => {
    server = await serveMiddleware([headers({ response: { set: { 'x-frame-options': 'DENY' } } }), redirectScheme(TO_HTTPS)]);
    const redirected = await server.send('/p', { headers: { host: 'shop.test' } });
    expect([redirected.status, redirected.headers.location, redirected.headers['x-frame-options']]).toEqual([301, 'https://shop.test/p', 'DENY']);
    await server.close();
    const failingHook: Middleware = async (context, next) => {
      context.responseHeaderHooks.push(() => {
        throw new Error('hook failed');
      });
      await next();
    };
    server = await serveMiddleware([failingHook, redirectScheme(TO_HTTPS)]);
    const failed = await server.send('/p', { headers: { host: 'shop.test' } });
    expect([failed.status, failed.headers.location, JSON.parse(failed.body.toString('utf8')).error]).toEqual([500, undefined, 'internal']);
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 500, errorClass: 'internal' });
  });
});
