import { afterEach, describe, expect, it } from 'vitest';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { stripPrefix } from './index.ts';

describe('stripPrefix', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it.each([
    ['/api', '/api/users/7', '/users/7'],
    ['/api/', '/api/users', '/users'],
    ['/api', '/api', '/'],
    ['/api', '/api?page=2', '/?page=2'],
    ['/api', '/apix/users', '/apix/users'],
    ['/api', '/other', '/other'],
    ['/', '/api/users', '/api/users'],
  ])('strips prefix %s from %s, sending %s upstream', async (prefix, path, upstream) => {
    server = await serveMiddleware([stripPrefix(prefix)]);
    expect(echoed(await server.send(path)).path).toBe(upstream);
  });

  it('leaves the client request untouched', async () => {
    server = await serveMiddleware([stripPrefix('/api')]);
    await server.send('/api/x');
    expect(server.contexts[0]!.request.url).toBe('/api/x');
  });
});
