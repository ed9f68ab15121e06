import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { startGateway, type Gateway } from '../pipeline.ts';
import { formatExplanation } from '../tools/explain-cli.ts';
import type { ExplainView } from './explain-view.ts';

/** A backend on a free loopback port, and that port. */
async function backendOn(handler: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** The real pipeline in this process with its admin listener, for `body` (services, middlewares, routes). */
function gatewayWith(body: string): Promise<Gateway> {
  return startGateway(parseConfig('g.yaml', `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\naccessLog: false\n${body}`));
}

/** The real pipeline in this process, in front of a backend that answers with the path it got. */
describe('GET /api/explain on routes that rewrite', () => {
  let backend: Server;
  let gateway: Gateway;

  beforeAll(async () => {
    const started = await backendOn((request, response) => response.end(request.url));
    backend = started.server;
    const port = started.port;
    gateway = await gatewayWith(`
services:
  users: { instances: ["127.0.0.1:${port}"] }
middlewares:
  to-v3: { rewrite: { pattern: "^/v2/", replacement: "/v3/" } }
routes:
  - { name: inline, path: /users, service: users, rewrite: { pattern: "^/users/(\\\\d+)$", replacement: "/v2/users/$1" } }
  - { name: named, path: /people, service: users, stripPrefix: true, rewrite: { pattern: "^/(.*)$", replacement: "/v2/$1" }, middlewares: [to-v3] }
  - { name: plain, path: /plain, service: users, stripPrefix: true }
  - { name: files, path: /files, service: users, rewrite: { pattern: "^/files/([^/]+)\\\\.json$", replacement: "/data/$1/public" } }
`);
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
  });

  it.each([
    ['the route rewrite', '/users/7?fields=name', '/v2/users/7?fields=name'],
    ['stripPrefix, the route rewrite, then a named rewrite', '/people/ada?x=1', '/v3/ada?x=1'],
    ['stripPrefix alone', '/plain/a/b', '/a/b'],
  ])('names as upstreamPath the path the upstream gets after %s', async (_edits, path, upstreamPath) => {
    const received = await (await fetch(`http://127.0.0.1:${gateway.port}${path}`)).text();
    const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=${encodeURIComponent(path)}`)).json()) as { route: { upstreamPath: string } };
    expect([received, explained.route.upstreamPath]).toEqual([upstreamPath, upstreamPath]);
  });

  it.each([
    ['a header without its name', 'path=/plain/x&header=x-tenant', 'header="x-tenant" is not "name: value" with an HTTP header name'],
    ['a header whose name is no HTTP token', 'path=/plain/x&header=x%20tenant%3A%20a', 'header="x tenant: a" is not "name: value" with an HTTP header name'],
    ['a method that is no HTTP token', 'path=/plain/x&method=G%20T', 'method="G T" is not an HTTP method (a token such as GET or PURGE)'],
  ])('refuses %s with 400 and the reason, where it explained another request than the one asked about', async (_case, query, message) => {
    const answer = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?${query}`);
    expect([answer.status, await answer.json()]).toEqual([400, { error: 'bad-request', status: 400, message }]);
  });

  it('takes a method in any case and a header value that holds colons (a control)', async () => {
    const answer = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/plain/x&method=purge&header=${encodeURIComponent('X-Tenant:a:b')}`);
    expect([answer.status, ((await answer.json()) as { request: { method: string } }).request.method]).toEqual([200, 'PURGE']);
  });

  it('gives as outcome the refusal of a request the rewrite turns into a dot segment, and no pick', async () => {
    const answer = await fetch(`http://127.0.0.1:${gateway.port}/files/...json`);
    const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=${encodeURIComponent('/files/...json')}`)).json()) as { outcome: string; pick: unknown };
    expect([answer.status, explained.outcome, explained.pick]).toEqual([400, 'rewritten-dot-segment', null]);
    // Its neighbour goes through.
    const neighbour = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=${encodeURIComponent('/files/....json')}`)).json()) as { outcome: string };
    expect(neighbour.outcome).toBe('proxy');
  });

  it('gives method-not-allowed as the outcome of a TRACE, which traffic answers 405 without forwardTrace, and no route nor pick', async () => {
    // fetch refuses to send TRACE.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      httpRequest({ port: gateway.port, host: '127.0.0.1', path: '/plain/x', method: 'TRACE' }, (response) => (response.resume(), resolve(response.statusCode))).on('error', reject).end();
    });
    const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/plain/x&method=trace`)).json()) as ExplainView;
    expect([status, explained.outcome, explained.route, explained.pick, [...new Set(explained.middleware.map((layer) => layer.scope))]]).toEqual([405, 'method-not-allowed', null, null, ['global']]);
  });
});

describe('GET /api/explain on a route that rewrites to a service hashed on the path', () => {
  it('picks the instance that the rewritten path goes to, as traffic does', async () => {
    const started = [];
    for (let index = 0; index < 2; index += 1) started.push(await backendOn((request, response) => response.end(String((request.socket.address() as AddressInfo).port))));
    const backends = started.map(({ server }) => server);
    const ports = started.map(({ port }) => port);
    const gateway = await gatewayWith(`
services:
  sticky: { balancer: { algorithm: consistent-hash, key: path }, instances: ["127.0.0.1:${ports[0]}", "127.0.0.1:${ports[1]}"] }
routes:
  - { path: /s, service: sticky, rewrite: { pattern: "^/s/(.*)$", replacement: "/objects/$1/v1" } }
`);
    try {
      // 24 keys: were the pick hashed on the path before the rewrite, some key would land elsewhere
      // (each has an even chance on two instances).
      for (let key = 0; key < 24; key += 1) {
        const answeredBy = await (await fetch(`http://127.0.0.1:${gateway.port}/s/key-${key}`)).text();
        const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/s/key-${key}`)).json()) as { pick: { address: string } };
        expect(explained.pick.address, `key-${key}`).toBe(`127.0.0.1:${answeredBy}`);
      }
    } finally {
      await gateway.close();
      for (const backend of backends) await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });
});

describe('GET /api/explain on a service hashed on the client IP', () => {
  it('hashes an IPv4-mapped clientIp as its IPv4 address, as traffic (whose forwarding step normalises the peer) does', async () => {
    const instances = Array.from({ length: 6 }, (_, index) => `"127.0.0.1:${40001 + index}"`).join(', ');
    const gateway = await gatewayWith(`
services:
  sticky: { balancer: consistent-hash, instances: [${instances}], healthCheck: false }
routes:
  - { path: /s, service: sticky }
`);
    const pickFor = async (clientIp: string) =>
      ((await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/s/x&clientIp=${encodeURIComponent(clientIp)}`)).json()) as { pick: { address: string } }).pick.address;
    try {
      // 16 addresses: were the mapped spelling hashed as written, some would land elsewhere (each has a 5 in 6 chance to).
      for (let host = 0; host < 16; host += 1) {
        const address = `10.0.0.${host}`;
        expect([await pickFor(`::ffff:${address}`), await pickFor(`::FFFF:${address}`)], address).toEqual([await pickFor(address), await pickFor(address)]);
      }
    } finally {
      await gateway.close();
    }
  });
});

/** GET `path` from the gateway as written, raw `\` included (fetch would read `\` as `/`, as WHATWG URLs do). */
function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('a raw backslash in a request path, in traffic and in GET /api/explain', () => {
  let backend: Server;
  let gateway: Gateway;

  beforeAll(async () => {
    const started = await backendOn((request, response) => response.end(request.url));
    backend = started.server;
    gateway = await gatewayWith(`
services:
  app: { instances: ["127.0.0.1:${started.port}"] }
middlewares:
  staff-only: { ipAllowList: { sourceRange: [192.0.2.0/24] } }
routes:
  - { name: admin, path: /admin, service: app, middlewares: [staff-only] }
  - { name: public, path: /public, service: app }
  - { name: files, path: /files, service: app, rewrite: { pattern: "^/files/([^/]+)\\\\.json$", replacement: "/data/$1/public" } }
`);
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
  });

  async function explained(path: string): Promise<{ outcome: string; route: { name: string; upstreamPath: string } }> {
    return (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=${encodeURIComponent(path)}`)).json()) as never;
  }

  it('sends it upstream as %5C: /public/..\\admin reaches the upstream as a path under /public, which no reader takes for the guarded /admin', async () => {
    expect((await rawGet(gateway.port, '/admin')).status).toBe(403);
    const answer = await rawGet(gateway.port, '/public/..\\admin');
    expect(answer).toEqual({ status: 200, body: '/public/..%5Cadmin' });
    // A WHATWG reader (new URL, as many Node apps parse req.url) reads a raw `\` as `/`: here it reads what the gateway routed.
    expect(new URL(answer.body, 'http://upstream').pathname).toBe('/public/..%5Cadmin');
    expect(await explained('/public/..\\admin')).toMatchObject({ outcome: 'proxy', route: { name: 'public', upstreamPath: '/public/..%5Cadmin' } });
  });

  it('keeps a backslash a rewrite carries from the request a character, never half of a dot segment', async () => {
    expect(await rawGet(gateway.port, '/files/..\\x.json')).toEqual({ status: 200, body: '/data/..%5Cx/public' });
    expect(await explained('/files/..\\x.json')).toMatchObject({ outcome: 'proxy', route: { name: 'files', upstreamPath: '/data/..%5Cx/public' } });
  });
});

describe('GET /api/explain on a route that selects a subset, and through an entry point that rewrites', () => {
  const backends: Server[] = [];
  let gateway: Gateway;

  beforeAll(async () => {
    const ports = [];
    for (let index = 0; index < 2; index += 1) {
      const started = await backendOn((request, response) => response.end(request.url));
      backends.push(started.server);
      ports.push(started.port);
    }
    gateway = await startGateway(
      parseConfig(
        'g.yaml',
        `admin: 127.0.0.1:0
accessLog: false
entryPoints:
  web: { listen: 127.0.0.1:0, middlewares: [old-to-new, dotted] }
services:
  app:
    instances:
      - { id: app-v1, host: 127.0.0.1, port: ${ports[0]}, metadata: { version: v1 } }
      - { id: app-v2, host: 127.0.0.1, port: ${ports[1]}, metadata: { version: v2 } }
middlewares:
  old-to-new: { rewrite: { pattern: "^/old/", replacement: "/new/" } }
  dotted: { rewrite: { pattern: "^/reports/([^/]*)\\\\.csv$", replacement: "/data/$1/" } }
routes:
  - { name: v2, path: /v2, service: app, subset: { match: { version: v2 } } }
  - { name: new, path: /new, service: app, subset: { match: { version: v1 } } }
  - { name: old, path: /old, service: app }
`,
      ),
    );
  });

  afterAll(async () => {
    await gateway?.close();
    for (const backend of backends) await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  async function explained(path: string): Promise<{ outcome: string; request: { routedPath: string }; route: { name: string; upstreamPath: string } | null; pick: { id: string } | null }> {
    return (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=${encodeURIComponent(path)}`)).json()) as never;
  }

  it('picks from the subset without making its balancer, which only traffic makes', async () => {
    expect(gateway.balancers.subsetCount()).toBe(0);
    expect(await explained('/v2/x')).toMatchObject({ outcome: 'proxy', route: { name: 'v2' }, pick: { id: 'app-v2' } });
    expect(gateway.balancers.subsetCount()).toBe(0);
    expect((await fetch(`http://127.0.0.1:${gateway.port}/v2/x`)).status).toBe(200);
    expect(gateway.balancers.subsetCount()).toBe(1);
    // Once made, it is the one explain reads.
    expect(await explained('/v2/x')).toMatchObject({ outcome: 'proxy', pick: { id: 'app-v2' } });
    expect(gateway.balancers.subsetCount()).toBe(1);
  });

  it('routes the path the entry point\'s rewrites make, as traffic does, and refuses a dot segment one makes', async () => {
    const answer = await fetch(`http://127.0.0.1:${gateway.port}/old/x?y=1`);
    expect([answer.status, await answer.text()]).toEqual([200, '/new/x?y=1']);
    const view = await explained('/old/x?y=1');
    expect(view).toMatchObject({ outcome: 'proxy', request: { routedPath: '/new/x?y=1' }, route: { name: 'new', upstreamPath: '/new/x?y=1' }, pick: { id: 'app-v1' } });
    expect(formatExplanation(view as unknown as ExplainView).split('\n')[0]).toBe('GET (no host) /old/x?y=1  [entry point web, routed as /new/x?y=1 (its rewrites)]');
    expect((await fetch(`http://127.0.0.1:${gateway.port}/reports/...csv`)).status).toBe(400);
    expect(await explained('/reports/...csv')).toMatchObject({ outcome: 'rewritten-dot-segment', route: null, pick: null });
  });
});

/**
 * A gateway in this process for one describe's tests of reloads: started before them from `text`
 * (an admin listener, `entryPoints` and one route to a backend that answers with the path it got),
 * closed with its backend after them. The tests apply variants of `text`.
 */
function gatewayForReloads(entryPoints: string): { gateway: Gateway; text: string } {
  const setup = { gateway: undefined as unknown as Gateway, text: '' };
  let backend: Server | undefined;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    const started = await backendOn((request, response) => response.end(request.url));
    backend = started.server;
    setup.text = `admin: 127.0.0.1:0
accessLog: false
entryPoints:
${entryPoints}services:
  app: { instances: ["127.0.0.1:${started.port}"] }
routes:
  - { name: all, path: /, service: app }
`;
    setup.gateway = gateway = await startGateway(parseConfig('g.yaml', setup.text));
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => (backend === undefined ? resolve() : backend.close(() => resolve())));
  });

  return setup;
}

describe('the admin views of an entry point a reload added, which listens only after a restart', () => {
  const setup = gatewayForReloads('  web: { listen: 127.0.0.1:0 }\n');

  const get = async <T>(path: string): Promise<T> => (await (await fetch(`http://127.0.0.1:${setup.gateway.adminPort}${path}`)).json()) as T;

  it('explains it as not listening, and marks it in GET /api/config, while the started one still serves', async () => {
    setup.gateway.apply(parseConfig('g.yaml', setup.text.replace('entryPoints:\n', 'entryPoints:\n  extra: { listen: 127.0.0.1:0 }\n')));
    const added = await get<ExplainView>('/api/explain?path=/x&entryPoint=extra');
    expect(added).toMatchObject({ outcome: 'entry-point-not-listening', route: { name: 'all' }, pick: null });
    expect(added.notes.join()).toContain('listens only after a restart');
    expect(await get<ExplainView>('/api/explain?path=/x&entryPoint=web')).toMatchObject({ outcome: 'proxy', notes: [] });
    const config = await get<{ restartRequired: string[]; entryPoints: { name: string; restartRequired: boolean }[] }>('/api/config');
    expect(config.restartRequired).toEqual(['entryPoints']);
    expect(config.entryPoints.map(({ name, restartRequired }) => ({ name, restartRequired }))).toEqual([
      { name: 'extra', restartRequired: true },
      { name: 'web', restartRequired: false },
    ]);
    expect(await (await fetch(`http://127.0.0.1:${setup.gateway.port}/x`)).text()).toBe('/x');
  });

  it('explains an entry point a reload removed as traffic on its listener is served: 404 no-route until a restart', async () => {
    setup.gateway.apply(parseConfig('g.yaml', setup.text.replace('web: { listen: 127.0.0.1:0 }', 'other: { listen: 127.0.0.1:0 }')));
    const removed = await get<ExplainView>('/api/explain?path=/x&entryPoint=web');
    expect(removed).toMatchObject({ request: { entryPoint: 'web', path: '/x' }, outcome: 'no-route', route: null, nearMisses: [], pick: null });
    expect(removed.middleware.map((layer) => layer.scope)).toEqual(['global', 'global']);
    expect(removed.notes.join()).toContain('entry point "web" was removed by a reload and still listens until a restart');
    expect(removed.notes.join()).toContain('404 no-route');
    // What the note says is what its listener does.
    expect((await fetch(`http://127.0.0.1:${setup.gateway.port}/x`)).status).toBe(404);
    const config = await get<{ restartRequired: string[]; entryPoints: { name: string; restartRequired: boolean; removed?: boolean }[] }>('/api/config');
    expect(config.restartRequired).toEqual(['entryPoints']);
    expect(config.entryPoints.map(({ name, restartRequired, removed }) => ({ name, restartRequired, removed }))).toEqual([
      { name: 'other', restartRequired: true, removed: undefined },
      { name: 'web', restartRequired: true, removed: true },
    ]);
  });

  it('notes of an entry point a reload moved that it listens where it started, and serves', async () => {
    setup.gateway.apply(parseConfig('g.yaml', setup.text.replace('web: { listen: 127.0.0.1:0 }', 'web: { listen: 127.0.0.1:1 }')));
    const moved = await get<ExplainView>('/api/explain?path=/x&entryPoint=web');
    expect(moved).toMatchObject({ outcome: 'proxy', route: { name: 'all' } });
    expect(moved.notes.join()).toContain('listens as the gateway started it');
    expect(await (await fetch(`http://127.0.0.1:${setup.gateway.port}/x`)).text()).toBe('/x');
  });
});

describe('the explanation of a tcp entry point a reload removed, which still forwards until a restart', () => {
  const setup = gatewayForReloads('  web: { listen: 127.0.0.1:0 }\n  db: { listen: 127.0.0.1:0, protocol: tcp, service: app }\n');

  it('says it forwards each connection to the service it started with, as it does', async () => {
    setup.gateway.apply(parseConfig('g.yaml', setup.text.replace(/ {2}db: .*\n/, '')));
    const answer = await fetch(`http://127.0.0.1:${setup.gateway.adminPort}/api/explain?path=/x&entryPoint=db`);
    expect(answer.status).toBe(200);
    const view = (await answer.json()) as ExplainView;
    expect(view).toMatchObject({ outcome: 'tcp-forward', route: null, pick: null });
    expect(view.notes.join()).toContain('entry point "db" was removed by a reload and still listens until a restart: it forwards each new connection to service "app"');
    // The bytes of an HTTP request go to the backend as they are: the listener still forwards.
    expect(await (await fetch(`http://127.0.0.1:${setup.gateway.ports.get('db')}/y`)).text()).toBe('/y');
  });
});
