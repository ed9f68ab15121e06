import { afterEach, describe, expect, it } from 'vitest';
import type { CorsSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { parseConfig } from '../../config/load.ts';
import { headers } from '../headers/index.ts';
import { cors } from './index.ts';

const APP = 'https://app.example.com';
const SETTINGS: CorsSettings = {
  allowOrigins: [APP, 'https://*.example.org', 'http://localhost:3000'],
  allowMethods: ['GET', 'PUT', 'DELETE'],
  allowHeaders: ['content-type', 'x-tenant'],
  exposeHeaders: ['x-request-id'],
  allowCredentials: true,
  maxAgeMs: 600_000,
};

const preflight = (origin: string, extra: Record<string, string> = {}) => ({ method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT', ...extra } });

describe('cors', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers a preflight from a listed origin itself, 204 with what is allowed, and never asks the upstream', async () => {
    let upstreamCalls = 0;
    const counting: Middleware = async (_context, next) => {
      upstreamCalls += 1;
      await next();
    };
    server = await serveMiddleware([cors(SETTINGS), counting]);
    const response = await server.send('/api', preflight(APP, { 'access-control-request-headers': 'content-type, x-tenant' }));
    expect(response.status).toBe(204);
    expect(response.headers).toMatchObject({
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET, PUT, DELETE',
      'access-control-allow-headers': 'content-type, x-tenant',
      'access-control-max-age': '600',
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    });
    expect(response.headers['content-length']).toBeUndefined();
    expect(upstreamCalls).toBe(0);
    expect(server.contexts[0]!.outcome.status).toBe(204);
  });

  it('refuses a preflight from an origin not listed with 403 and no grant', async () => {
    server = await serveMiddleware([cors(SETTINGS)]);
    for (const origin of ['https://evil.example', 'http://app.example.com', 'https://app.example.com.evil.example', 'https://example.org', 'http://localhost:3001']) {
      const response = await server.send('/api', preflight(origin));
      expect([origin, response.status, response.headers['access-control-allow-origin'], response.headers['content-length']]).toEqual([origin, 403, undefined, '0']);
    }
  });

  it('lets the response header hooks of the layers before it edit its preflight answers, and answers 500 internal when one fails them', async () => {
    server = await serveMiddleware([headers({ response: { set: { 'x-frame-options': 'DENY' } } }), cors(SETTINGS)]);
    const granted = await server.send('/api', preflight(APP));
    const refused = await server.send('/api', preflight('https://evil.test'));
    expect([granted.status, granted.headers['access-control-allow-origin'], granted.headers['x-frame-options']]).toEqual([204, APP, 'DENY']);
    expect([refused.status, refused.headers['access-control-allow-origin'], refused.headers['x-frame-options']]).toEqual([403, undefined, 'DENY']);
    await server.close();
    const failingHook: Middleware = async (context, next) => {
      context.responseHeaderHooks.push(() => {
        throw new Error('hook failed');
      });
      await next();
    };
    server = await serveMiddleware([failingHook, cors(SETTINGS)]);
    const failed = await server.send('/api', preflight(APP));
    expect([failed.status, failed.headers['access-control-allow-origin'], JSON.parse(failed.body.toString('utf8')).error]).toEqual([500, undefined, 'internal']);
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 500, errorClass: 'internal' });
  });

  it('matches subdomains of a wildcard origin at any depth, on its scheme and port only, and origins whatever their case', async () => {
    server = await serveMiddleware([cors(SETTINGS)]);
    for (const origin of ['https://a.example.org', 'https://b.a.example.org', 'HTTPS://App.Example.COM', 'http://localhost:3000']) {
      expect((await server.send('/api', preflight(origin))).headers['access-control-allow-origin']).toBe(origin);
    }
    for (const origin of ['https://a.example.org:8443', 'http://a.example.org']) {
      expect((await server.send('/api', preflight(origin))).status).toBe(403);
    }
  });

  it("grants a listed origin on the upstream's answer, replacing the upstream's own grant, and adds Origin to its Vary", async () => {
    server = await serveMiddleware([cors(SETTINGS)], fakeProxy({ headers: { 'access-control-allow-origin': '*', vary: 'Accept-Encoding' } }));
    const response = await server.send('/api', { headers: { origin: APP } });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-request-id', vary: 'Accept-Encoding, Origin' });
  });

  it("drops an upstream's grant to an origin not listed, and to a request without Origin", async () => {
    server = await serveMiddleware([cors(SETTINGS)], fakeProxy({ headers: { 'access-control-allow-origin': 'https://evil.example', 'access-control-allow-credentials': 'true' } }));
    for (const headers of [{ origin: 'https://evil.example' }, {}]) {
      const response = await server.send('/api', { headers });
      expect(response.status).toBe(200);
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
      expect(response.headers['access-control-allow-credentials']).toBeUndefined();
      expect(response.headers.vary).toBe('Origin');
    }
  });

  it("grants on the gateway's own answers, so a page can read a 429 or a 502", async () => {
    const refuses: Middleware = async (context) => sendErrorAnswer(context, 429, 'rate-limited', 'too many requests');
    server = await serveMiddleware([cors(SETTINGS), refuses]);
    const response = await server.send('/api', { headers: { origin: APP } });
    expect([response.status, response.headers['access-control-allow-origin']]).toEqual([429, APP]);
  });

  it('passes an OPTIONS request that is no preflight to the upstream', async () => {
    server = await serveMiddleware([cors(SETTINGS)]);
    expect((await server.send('/api', { method: 'OPTIONS', headers: { origin: APP } })).status).toBe(200);
    expect((await server.send('/api', { method: 'OPTIONS', headers: { 'access-control-request-method': 'PUT' } })).status).toBe(200);
  });

  it('answers any origin with * and no Vary without credentials, and echoes what a preflight asks for with * methods and headers', async () => {
    server = await serveMiddleware([cors({ ...SETTINGS, allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: false, maxAgeMs: undefined })]);
    const asked = await server.send('/api', { method: 'OPTIONS', headers: { origin: 'https://any.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'x-a' } });
    expect(asked.status).toBe(204);
    expect(asked.headers).toMatchObject({ 'access-control-allow-origin': '*', 'access-control-allow-methods': 'PATCH', 'access-control-allow-headers': 'x-a' });
    expect(asked.headers['access-control-max-age']).toBeUndefined();
    expect(asked.headers['access-control-allow-credentials']).toBeUndefined();
    const simple = await server.send('/api', { headers: { origin: 'https://any.example' } });
    expect(simple.headers['access-control-allow-origin']).toBe('*');
    expect(simple.headers.vary).toBeUndefined();
  });

  it('grants * on an answer to a request without Origin too, since that answer carries no Vary: Origin and a cache may hand it to a page', async () => {
    server = await serveMiddleware([cors({ ...SETTINGS, allowOrigins: ['*'], allowCredentials: false })]);
    const response = await server.send('/api', {});
    expect([response.headers['access-control-allow-origin'], response.headers.vary]).toEqual(['*', undefined]);
  });
});

describe('cors in the configuration', () => {
  const corsOf = (settings: string) => parseConfig('gateway.yaml', `middlewares:\n  c: { cors: ${settings} }\n`).middlewares.get('c');

  it('reads origins as browsers send them, with defaults', () => {
    expect(corsOf('{ allowOrigins: ["HTTPS://App.Example.com:443", "http://localhost:80", "http://localhost:3000", "https://*.example.org"] }')).toEqual({
      kind: 'cors',
      settings: {
        allowOrigins: ['https://app.example.com', 'http://localhost', 'http://localhost:3000', 'https://*.example.org'],
        allowMethods: ['GET', 'HEAD', 'POST'],
        allowHeaders: [],
        exposeHeaders: [],
        allowCredentials: false,
        maxAgeMs: undefined,
      },
    });
    expect(corsOf('{ allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: [X-Tenant], exposeHeaders: [X-Request-Id], maxAge: 10m }')).toMatchObject({
      settings: { allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['x-tenant'], exposeHeaders: ['x-request-id'], maxAgeMs: 600_000 },
    });
  });

  it.each([
    ['{ allowOrigins: ["*"], allowCredentials: true }', 'middlewares.c.cors.allowCredentials (line 2): cannot go with allowOrigins "*"'],
    ['{ allowOrigins: ["https://a.example"], allowCredentials: true, exposeHeaders: ["*"] }', 'middlewares.c.cors.exposeHeaders (line 2): cannot hold "*" with allowCredentials'],
    ['{ allowOrigins: ["https://app.example.com/"] }', 'middlewares.c.cors.allowOrigins.0 (line 2): expected "*" or an origin'],
    ['{ allowOrigins: ["app.example.com"] }', 'middlewares.c.cors.allowOrigins.0'],
    ['{ allowOrigins: ["https://a.*.example.com"] }', 'middlewares.c.cors.allowOrigins.0'],
    ['{ allowOrigins: ["null"] }', 'middlewares.c.cors.allowOrigins.0'],
    ['{ allowOrigins: [] }', 'middlewares.c.cors.allowOrigins'],
    ['{ allowOrigins: ["*"], allowMethods: ["GET POST"] }', 'middlewares.c.cors.allowMethods.0 (line 2): is not a valid method'],
  ])('refuses %s naming the path', (settings, message) => {
    expect(() => corsOf(settings)).toThrow(message);
  });
});
