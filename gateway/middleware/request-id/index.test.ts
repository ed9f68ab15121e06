import { afterEach, describe, expect, it } from 'vitest';
import { echoed, fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import type { OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext, ResponseHeadersHook } from '../../context.ts';
import { requestId, requestIdStep } from './index.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('requestId', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('keeps a sane incoming id and sends it upstream, back to the client and into the context', async () => {
    server = await serveMiddleware([requestId()]);
    const response = await server.send('/', { headers: { 'X-Request-Id': 'abc.DEF_123-x' } });
    expect(response.headers['x-request-id']).toBe('abc.DEF_123-x');
    expect(echoed(response).headers['x-request-id']).toBe('abc.DEF_123-x');
    expect(server.contexts[0]!.requestId).toBe('abc.DEF_123-x');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'two words'],
    ['with a header-injection attempt', 'abc%0d%0aSet-Cookie:x'],
    ['empty', ''],
  ])('replaces an incoming id that is %s with a UUID', async (_case, incoming) => {
    server = await serveMiddleware([requestId()]);
    const response = await server.send('/', { headers: { 'x-request-id': incoming } });
    expect(response.headers['x-request-id']).toMatch(UUID);
    expect(echoed(response).headers['x-request-id']).toBe(response.headers['x-request-id']);
  });

  it('generates a different id for each request without one', async () => {
    server = await serveMiddleware([requestId()]);
    const first = await server.send('/');
    const second = await server.send('/');
    expect(first.headers['x-request-id']).toMatch(UUID);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
  });

  it('answers with its own id even when the upstream sends another one back', async () => {
    server = await serveMiddleware([requestId()], fakeProxy({ headers: { 'x-request-id': 'from-upstream' } }));
    const response = await server.send('/', { headers: { 'x-request-id': 'client-id' } });
    expect(response.headers['x-request-id']).toBe('client-id');
  });

  it('accepts an id of exactly 128 characters', async () => {
    server = await serveMiddleware([requestId()]);
    const id = 'x'.repeat(128);
    expect((await server.send('/', { headers: { 'x-request-id': id } })).headers['x-request-id']).toBe(id);
  });
});

describe('requestIdStep', () => {
  it('answers each request with its own id although one hook serves every request', () => {
    const step = requestIdStep({ generate: (() => {
      let next = 0;
      return () => `id-${(next += 1)}`;
    })() });
    const context = () => ({ request: { headers: {} }, upstream: { headers: {} as Record<string, string> }, responseHeaderHooks: [] as ResponseHeadersHook[], requestId: '' }) as unknown as GatewayContext;
    const first = context();
    const second = context();
    step(first);
    step(second);
    // The first request's answer arrives after the second request was given its id.
    const firstAnswer: OutgoingHttpHeaders = { 'x-request-id': 'from-upstream' };
    for (const hook of first.responseHeaderHooks) hook(200, firstAnswer, first);
    const secondAnswer: OutgoingHttpHeaders = {};
    for (const hook of second.responseHeaderHooks) hook(200, secondAnswer, second);
    expect([firstAnswer['x-request-id'], secondAnswer['x-request-id']]).toEqual(['id-1', 'id-2']);
    expect([first.upstream.headers['x-request-id'], second.upstream.headers['x-request-id']]).toEqual(['id-1', 'id-2']);
  });
});
