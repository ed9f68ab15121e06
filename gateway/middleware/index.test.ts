import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import { parseConfig } from '../config/load.ts';
import { accessLogDestination, globalMiddleware, routeMiddleware } from './index.ts';
import { echoed, fakeProxy, serveMiddleware, type MiddlewareServer } from './middleware-testing.ts';

const CONFIG = `
forwarding: { trustedProxies: [loopback] }
routes:
  - name: users
    path: /api/users
    service: user
    rewrite: { pattern: "^/api/users/(\\\\d+)$", replacement: "/v2/users/$1" }
    requestHeaders: { set: { x-gateway: switchboard }, remove: [cookie] }
    responseHeaders: { set: { cache-control: no-store }, remove: [server] }
    hostHeader: upstream
  - { path: /plain, service: plain }
`;

describe('routeMiddleware', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('builds the rewrite, header and Host policy of a route from its config', async () => {
    const route = parseConfig('gateway.yaml', CONFIG).routes[0]!;
    server = await serveMiddleware(routeMiddleware(route), fakeProxy({ headers: { server: 'nginx' } }));
    const response = await server.send('/api/users/42', { headers: { cookie: 'a=1' } });
    const echo = echoed(response);
    expect(echo.path).toBe('/v2/users/42');
    expect(echo.headers['x-gateway']).toBe('switchboard');
    expect(echo.headers.cookie).toBeUndefined();
    expect(echo.useInstanceHost).toBe(true);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.headers.server).toBeUndefined();
  });

  it('builds no layer for a route without options, and builds each chain once', () => {
    const [users, plain] = parseConfig('gateway.yaml', CONFIG).routes;
    expect(routeMiddleware(plain!)).toHaveLength(0);
    expect(routeMiddleware(users!)).toBe(routeMiddleware(users!));
  });
});

describe('globalMiddleware', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  function capture() {
    const lines: Record<string, unknown>[] = [];
    const sink = { write: (batch: string) => lines.push(...batch.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)) };
    return { lines, logger: accessLogDestination(sink) };
  }

  it('gives every request an id, trusted forwarding and an access line', async () => {
    const { lines, logger } = capture();
    server = await serveMiddleware(globalMiddleware(parseConfig('gateway.yaml', CONFIG), { accessLogger: logger }));
    const response = await server.send('/x', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(response.headers['x-request-id']).toBeTypeOf('string');
    expect(echoed(response).headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ clientIp: '203.0.113.7', requestId: response.headers['x-request-id'] });
  });

  it('leaves the access log out when accessLog is false', () => {
    const config = parseConfig('gateway.yaml', 'accessLog: false');
    expect(globalMiddleware(config).map((layer) => layer.name)).toEqual(['requestId', 'forwarded']);
  });
});
