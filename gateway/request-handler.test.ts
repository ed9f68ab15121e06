import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../src/logger.ts';
import { parseConfig } from './config/load.ts';
import type { GatewayContext, Middleware } from './context.ts';
import { accessLogDestination, compose } from './middleware/index.ts';
import { waitFor } from '../test/harness/wait.ts';
import { NamedMiddlewareRegistry } from './middleware/named-middleware.ts';
import { sendGatewayError } from './proxy/error-response.ts';
import { createContext, createRequestRunner } from './request-handler.ts';

// The shape a middleware that publishes a value declares (here only for this test).
declare module './context.ts' {
  interface ContextVariables {
    'test.tenant': { id: string };
  }
}

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** A real server on port 0 that hands each request to `handle` with a fresh context; answers the first response. */
async function serve(handle: (context: GatewayContext) => Promise<void>): Promise<(path: string, headers?: Record<string, string>) => Promise<{ status: number; headers: Record<string, unknown>; body: string }>> {
  const server = createServer((request, response) => void handle(createContext(request, response, rootLogger)));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return (path, headers = {}) =>
    new Promise((resolve, reject) => {
      httpRequest({ port, host: '127.0.0.1', path, headers, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      })
        .on('error', reject)
        .end();
    });
}

/** The centre of the onion in these tests: answers with what the layers left in the context. */
const echoProxy = async (context: GatewayContext) => {
  const body = JSON.stringify({ path: context.upstream.path, trace: context.upstream.headers['x-trace'] ?? null, tenant: context.get('test.tenant') ?? null });
  context.outcome.status = 200;
  context.response.writeHead(200, { 'content-type': 'application/json' });
  context.response.end(body);
};

describe('context variables', () => {
  it('carry a value a middleware set to the middleware after it, per request', async () => {
    let seen: unknown = 'not run';
    const sets: Middleware = async (context, next) => {
      context.set('test.tenant', { id: context.upstream.path.slice(1) });
      await next();
    };
    const reads: Middleware = async (context, next) => {
      seen = context.get('test.tenant');
      await next();
    };
    const get = await serve(compose([sets, reads], echoProxy));
    expect(JSON.parse((await get('/acme')).body)).toMatchObject({ tenant: { id: 'acme' } });
    expect(seen).toEqual({ id: 'acme' });
    expect(JSON.parse((await get('/globex')).body)).toMatchObject({ tenant: { id: 'globex' } });
  });

  it('are undefined until set, and a fresh request starts without any', async () => {
    const contexts: GatewayContext[] = [];
    const get = await serve(async (context) => {
      contexts.push(context);
      if (contexts.length === 1) context.set('test.tenant', { id: 'first' });
      await echoProxy(context);
    });
    await get('/');
    expect(JSON.parse((await get('/')).body)).toMatchObject({ tenant: null });
    expect(contexts[1]!.get('test.tenant')).toBeUndefined();
  });

  it('come with the entry point and whether the connection is TLS', async () => {
    const contexts: GatewayContext[] = [];
    const get = await serve(async (context) => {
      contexts.push(context);
      await echoProxy(context);
    });
    await get('/');
    expect([contexts[0]!.entryPoint, contexts[0]!.secure]).toEqual(['web', false]);
  });
});

describe('createRequestRunner with named middleware', () => {
  const CONFIG = `
accessLog: false
middlewares:
  first: { headers: { request: { set: { x-trace: first } } } }
  second: { rewrite: { pattern: "^/(.*)$", replacement: "/second/$1" } }
routes:
  - { path: /named, service: a, rewrite: { pattern: "^/named", replacement: /inline }, middlewares: [second, first] }
  - { path: /plain, service: a }
`;

  it('runs the route inline edits first, then its named middleware in list order', async () => {
    const config = parseConfig('gateway.yaml', CONFIG);
    const get = await serve(createRequestRunner(config, { proxy: echoProxy, hasService: () => true }));
    expect(JSON.parse((await get('/named/x')).body)).toEqual({ path: '/second/inline/x', trace: 'first', tenant: null });
    expect(JSON.parse((await get('/plain/x')).body)).toEqual({ path: '/plain/x', trace: null, tenant: null });
  });

  it('takes the instances from the registry it is given, so their state outlives one configuration', async () => {
    const calls: string[] = [];
    const registry = new NamedMiddlewareRegistry((definition) => async (_context, next) => {
      calls.push(definition.kind);
      await next();
    });
    const config = parseConfig('gateway.yaml', CONFIG);
    registry.update(config);
    const get = await serve(createRequestRunner(config, { proxy: echoProxy, hasService: () => true, namedMiddleware: registry }));
    await get('/named/x');
    expect(calls).toEqual(['rewrite', 'headers']);
  });
});

describe('a rewrite on an entry point', () => {
  const CONFIG = `
accessLog: false
entryPoints:
  web: { listen: ":8080", middlewares: [json, old, escaped] }
middlewares:
  json: { rewrite: { pattern: "^/api/(.*)\\\\.json$", replacement: "/data/$1/public" } }
  old: { rewrite: { pattern: "^/old/", replacement: "/new/" } }
  escaped: { rewrite: { pattern: "^/reports/([^/]*)$", replacement: "/data/%2E%2E$1/" } }
routes:
  - { path: /, service: a }
`;

  it('matches the path the router will read and refuses a dot segment it writes, as on a route, whether the client sent a dot segment or not', async () => {
    const get = await serve(createRequestRunner(parseConfig('gateway.yaml', CONFIG), { proxy: echoProxy, hasService: () => true }));
    // `/api/./...json` became `/data/./../public`, which passed (the path held a dot segment before) and the router made `/public`.
    for (const path of ['/api/...json', '/api/./...json', '/api/x/../...json', '/api/%2E%2E.json']) {
      const answer = await get(path);
      expect([answer.status, JSON.parse(answer.body).error], path).toEqual([400, 'rewritten-dot-segment']);
    }
    expect(JSON.parse((await get('/old/x/../y')).body).path).toBe('/new/y');
    expect(JSON.parse((await get('/x/../old/y')).body).path).toBe('/new/y');
    expect(JSON.parse((await get('/api/./report.json')).body).path).toBe('/data/report/public');
  });

  it('refuses a dot segment its replacement spells %2E%2E, which the router would climb with before matching a route', async () => {
    const get = await serve(createRequestRunner(parseConfig('gateway.yaml', CONFIG), { proxy: echoProxy, hasService: () => true }));
    // `/data/%2E%2E/`: the group was empty. A replacement making it whatever the group holds is refused when the file loads.
    const answer = await get('/reports/');
    expect([answer.status, JSON.parse(answer.body).error]).toEqual([400, 'rewritten-dot-segment']);
    // The router decodes the escapes, and `..x` is no dot segment.
    expect(JSON.parse((await get('/reports/x')).body).path).toBe('/data/..x/');
  });
});

describe('a client that names its own consumer', () => {
  it('has its X-Consumer removed on a route without authentication too, so no upstream believes it', async () => {
    const config = parseConfig('gateway.yaml', 'accessLog: false\nroutes: [{ path: /open, service: a }]');
    const consumerUpstream = async (context: GatewayContext) => {
      context.outcome.status = 200;
      context.response.writeHead(200, { 'content-type': 'application/json' });
      context.response.end(JSON.stringify({ consumer: context.upstream.headers['x-consumer'] ?? null, other: context.upstream.headers['x-other'] ?? null }));
    };
    const get = await serve(createRequestRunner(config, { proxy: consumerUpstream, hasService: () => true }));
    const answer = await get('/open/orders', { 'X-Consumer': 'admin', 'X-Other': 'kept' });
    expect(JSON.parse(answer.body)).toEqual({ consumer: null, other: 'kept' });
  });

  it('has its X_Consumer, X_SSL_Client_Verify and X_Real_IP (underscores, which CGI-style upstreams read as the dashed names) removed too', async () => {
    const config = parseConfig('gateway.yaml', 'accessLog: false\nroutes: [{ path: /open, service: a }]');
    const underscored = ['x_consumer', 'x_ssl_client_verify', 'x-ssl_client-s_dn', 'x_real_ip', 'x_forwarded_for', 'x_request_id', 'x_other'];
    const consumerUpstream = async (context: GatewayContext) => {
      context.outcome.status = 200;
      context.response.writeHead(200, { 'content-type': 'application/json' });
      context.response.end(JSON.stringify(Object.fromEntries(underscored.map((name) => [name, context.upstream.headers[name] ?? null]))));
    };
    const get = await serve(createRequestRunner(config, { proxy: consumerUpstream, hasService: () => true }));
    const answer = await get('/open/orders', Object.fromEntries(underscored.map((name) => [name, 'forged'])));
    expect(JSON.parse(answer.body)).toEqual({ x_consumer: null, x_ssl_client_verify: null, 'x-ssl_client-s_dn': null, x_real_ip: null, x_forwarded_for: null, x_request_id: null, x_other: 'forged' });
  });
});

describe('createRequestRunner when something inside the onion throws', () => {
  it('answers 500 internal and still reports the request once', async () => {
    const ended: number[] = [];
    const runner = createRequestRunner(parseConfig('g.yaml', 'accessLog: false\nroutes: [{ path: /, service: svc }]'), {
      proxy: () => Promise.reject(new Error('a middleware failed')),
      hasService: () => true,
      onRequestEnd: (context) => ended.push(context.outcome.status),
    });
    const answer = await (await serve(runner))('/x');
    expect(answer.status).toBe(500);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'internal', status: 500, service: 'svc' });
    expect(ended).toEqual([500]);
  });

  it.each([
    ['a response header hook that throws', () => { throw new Error('the hook failed'); }],
    ['a header a hook set that no response may carry', (_status: number, headers: Record<string, unknown>) => void (headers['x-team'] = '李')],
  ])("answers a clean 500 internal when %s fails the gateway's own answer, and still reports the request once", async (_case, hook) => {
    const ended: [number, string | undefined][] = [];
    const runner = createRequestRunner(parseConfig('g.yaml', 'accessLog: false\nroutes: [{ path: /, service: svc }]'), {
      proxy: async (context) => {
        context.responseHeaderHooks.push(hook);
        sendGatewayError(context, 'connect-refused');
      },
      hasService: () => true,
      onRequestEnd: (context) => ended.push([context.outcome.status, context.outcome.errorClass]),
    });
    const get = await serve(runner);
    const answer = await get('/x', { 'content-type': 'application/json' });
    expect([answer.status, JSON.parse(answer.body)]).toEqual([500, expect.objectContaining({ error: 'internal', status: 500, service: 'svc' })]);
    expect(ended).toEqual([[500, 'internal']]);
    // And a gRPC caller gets its status, not a cut stream.
    const grpc = await get('/x', { 'content-type': 'application/grpc-web' });
    expect([grpc.status, grpc.headers['grpc-status']]).toEqual([200, '13']);
  });
});

describe('the access log of a gateway that reads credentials from the query', () => {
  it('leaves keyAuth and jwtAuth query parameters out of every line, also of requests refused before they ran', async () => {
    const lines: string[] = [];
    const accessLogger = accessLogDestination({ write: (batch: string) => void lines.push(...batch.trimEnd().split('\n')) });
    const config = parseConfig(
      'gateway.yaml',
      `consumers: { a: { keys: ["sha256:${'ab'.repeat(32)}"] } }
middlewares:
  limit: { rateLimit: { average: 1, period: 1m, burst: 1, key: route } }
  by-key: { keyAuth: { query: api_key } }
  by-token: { jwtAuth: { algorithms: [HS256], secretFile: /nonexistent, from: { query: access_token } } }
routes:
  - { path: /api, service: a, middlewares: [limit, by-key] }
`,
      { readFiles: false },
    );
    const get = await serve(createRequestRunner(config, { proxy: echoProxy, hasService: () => true, accessLogger }));
    const statuses = [];
    for (const path of ['/nowhere?api_key=secret-1&q=1', '/api?api_key=secret-2', '/api?q=2&api%5Fkey=secret-3&access_token=secret-4', '/api/plain?q=3'])
      statuses.push((await get(path)).status);
    expect(statuses).toEqual([404, 401, 429, 429]);
    await waitFor(() => lines.length === 4);
    expect(lines.join('\n')).not.toMatch(/secret-\d/);
    expect(lines.map((line) => (JSON.parse(line) as { path: string }).path)).toEqual(['/nowhere?q=1', '/api', '/api?q=2', '/api/plain?q=3']);
  });
});
