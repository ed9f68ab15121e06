import { afterEach, describe, expect, it } from 'vitest';
import { echoed, fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { sendGatewayError } from '../../proxy/error-response.ts';
import { headers } from './index.ts';

describe('headers', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('sets and removes request headers on the upstream side only', async () => {
    server = await serveMiddleware([headers({ request: { set: { 'X-Tenant': 'acme', 'user-agent': 'gateway' }, remove: ['Cookie'] } })]);
    const response = await server.send('/', { headers: { cookie: 'session=1', 'user-agent': 'curl' } });
    const upstream = echoed(response).headers;
    expect(upstream).toMatchObject({ 'x-tenant': 'acme', 'user-agent': 'gateway' });
    expect(upstream.cookie).toBeUndefined();
    expect(server.contexts[0]!.request.headers.cookie).toBe('session=1');
  });

  it('sets and removes response headers through the response header hook', async () => {
    server = await serveMiddleware(
      [headers({ response: { set: { 'Strict-Transport-Security': 'max-age=63072000' }, remove: ['X-Powered-By'] } })],
      fakeProxy({ headers: { 'x-powered-by': 'Express', 'x-kept': 'yes' } }),
    );
    const response = await server.send('/');
    expect(response.headers['strict-transport-security']).toBe('max-age=63072000');
    expect(response.headers['x-powered-by']).toBeUndefined();
    expect(response.headers['x-kept']).toBe('yes');
  });

  it("edits the gateway's own answers too (an upstream that refused the connection), as the docs say", async () => {
    server = await serveMiddleware([headers({ response: { set: { 'cache-control': 'no-store' }, remove: ['x-request-id'] } })], async (context) => sendGatewayError(context, 'connect-refused'));
    const response = await server.send('/');
    expect(response.status).toBe(502);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.headers['x-request-id']).toBeUndefined();
  });

  it('keeps the header it sets when it also removes another spelling of it (set X-Tenant, remove X_Tenant)', async () => {
    server = await serveMiddleware([headers({ request: { set: { 'X-Tenant': 'gateway' }, remove: ['X_Tenant'] } })]);
    const upstream = echoed(await server.send('/', { headers: { x_tenant: 'client', 'x-tenant_': 'other' } })).headers;
    expect(upstream['x-tenant']).toBe('gateway');
    expect(upstream.x_tenant).toBeUndefined();
  });

  it('removes a header named in both set and remove', async () => {
    server = await serveMiddleware([headers({ request: { set: { 'x-a': '1' }, remove: ['x-a'] } })]);
    expect(echoed(await server.send('/')).headers['x-a']).toBeUndefined();
  });

  it.each([
    ['pass', undefined, false],
    ['upstream', undefined, true],
    ['backend.internal:8443', 'backend.internal:8443', false],
  ] as const)('applies Host policy %s', async (policy, host, useInstanceHost) => {
    server = await serveMiddleware([headers({ host: policy })]);
    const echo = echoed(await server.send('/'));
    expect(echo.host).toBe(host);
    expect(echo.useInstanceHost).toBe(useInstanceHost);
  });

  it('registers no response hook when the policy edits no response header', async () => {
    server = await serveMiddleware([headers({ request: { set: { 'x-a': '1' } } })]);
    await server.send('/');
    expect(server.contexts[0]!.responseHeaderHooks).toHaveLength(0);
  });
});
