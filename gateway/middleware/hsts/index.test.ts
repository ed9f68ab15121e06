import { afterEach, describe, expect, it } from 'vitest';
import type { Middleware } from '../../context.ts';
import { fakeProxy, overTls, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { hsts, hstsValue } from './index.ts';

const YEAR = { maxAgeMs: 365 * 86_400_000, includeSubDomains: true, preload: false };


describe('hsts', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each([
    [YEAR, 'max-age=31536000; includeSubDomains'],
    [{ maxAgeMs: 1_500, includeSubDomains: false, preload: true }, 'max-age=1; preload'],
    [{ maxAgeMs: 0, includeSubDomains: false, preload: false }, 'max-age=0'],
  ])('writes %j as %s', (settings, value) => {
    expect(hstsValue(settings)).toBe(value);
  });

  it('sets the header on a secure connection, replacing an upstream value', async () => {
    server = await serveMiddleware([overTls, hsts(YEAR)], fakeProxy({ headers: { 'strict-transport-security': 'max-age=5' } }));
    expect((await server!.send('/')).headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('sets the header on the gateway own answers on a secure connection', async () => {
    const refuses: Middleware = async (context) => {
      context.response.writeHead(429, { 'content-length': 0 });
      context.response.end();
    };
    server = await serveMiddleware([overTls, hsts(YEAR), refuses]);
    expect((await server!.send('/')).headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('never sets it on a plain connection', async () => {
    server = await serveMiddleware([hsts(YEAR)]);
    const response = await server!.send('/');
    expect([response.status, response.headers['strict-transport-security']]).toEqual([200, undefined]);
  });
});
