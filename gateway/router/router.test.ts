import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { routesInMatchOrder } from './route-compile.ts';
import { createRouter, normalizeHost, type RouteRequest } from './router.ts';

/** A router over routes written as YAML flow maps, one per line, so tests read like the config file. */
function routerOf(routes: string[], services: string[] = []) {
  const config = parseConfig('test.yaml', `routes:\n${routes.map((route) => `  - ${route}`).join('\n')}\n`);
  return createRouter(config.routes, { hasService: (name) => services.includes(name) });
}

/** `req.headers` of the raw HTTP/1.1 request `head`, as a real node server parses it. */
async function headersParsedByNode(head: string): Promise<IncomingHttpHeaders> {
  const server = createServer();
  const parsed = new Promise<IncomingHttpHeaders>((resolve) => server.once('request', (req: IncomingMessage, res: ServerResponse) => {
    resolve(req.headers);
    res.end();
  }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => socket.write(head));
  try {
    return await parsed;
  } finally {
    socket.destroy();
    server.close();
  }
}

function request(path: string, extra: Partial<RouteRequest> = {}): RouteRequest {
  return { method: 'GET', host: 'gateway.local', path, headers: {}, ...extra };
}

describe('Router path prefixes', () => {
  const router = routerOf(['{ path: /api/user, service: user, stripPrefix: true }', '{ path: /api, service: api }']);

  it.each([
    ['/api/user', 'user', '/'],
    ['/api/user/', 'user', '/'],
    ['/api/user/42/orders', 'user', '/42/orders'],
    ['/api/user?active=1', 'user', '/?active=1'],
    ['/api/username', 'api', '/api/username'],
    ['/api', 'api', '/api'],
    ['/apix', undefined, undefined],
  ])('routes %s to service %s with upstream path %s', (path, service, upstream) => {
    const match = router.route(request(path));
    expect(match?.service).toBe(service);
    expect(match?.path).toBe(upstream);
  });

  it('prefers the longer prefix whatever the file order', () => {
    const reversed = routerOf(['{ path: /api, service: api }', '{ path: /api/user, service: user }']);
    expect(reversed.route(request('/api/user/1'))?.service).toBe('user');
  });

  it('treats a route without path, or with path /, as a catch-all that loses to any prefix', () => {
    const catchAll = routerOf(['{ service: fallback }', '{ path: /docs, service: docs }']);
    expect(catchAll.route(request('/docs/intro'))?.service).toBe('docs');
    expect(catchAll.route(request('/anything'))?.service).toBe('fallback');
  });

  it.each([
    ['/caf%c3%a9', '/caf%C3%A9/menu'],
    ['/café', '/caf%C3%A9/menu'],
    ['/%7Euser', '/~user/menu'],
    ['/a/./b/../c', '/a/c/menu'],
    ['/a\\\\b', '/a%5Cb/menu'],
  ])('matches a prefix written as %s with the normalised request path %s', (written, normalised) => {
    expect(routerOf([`{ path: "${written}", service: s, stripPrefix: true }`]).route(request(normalised))).toMatchObject({ service: 's', path: '/menu' });
  });

  it('refuses a prefix that no normalised path can start with', () => {
    expect(() => routerOf(['{ path: /files/%zz, service: s }'])).toThrow(/routes\.0\.path.*every % starts an escape/);
    expect(() => routerOf(['{ path: /files/%00, service: s }'])).toThrow(/routes\.0\.path.*NUL/);
  });

  it('names a route by its name, or by what it matches', () => {
    const named = routerOf(['{ name: users, path: /u, service: user }', '{ path: /o, service: orders }']);
    expect(named.route(request('/u'))?.name).toBe('users');
    expect(named.route(request('/o'))?.name).toBe('/o');
  });

  it('routes an absolute-form request target by its path and host', () => {
    const hosted = routerOf(['{ host: api.example.com, path: /v1, service: v1 }']);
    expect(hosted.route(request('http://API.example.com:8080/v1/x?y=1', { host: 'other' }))).toMatchObject({ service: 'v1', path: '/v1/x?y=1' });
  });
});

describe('Router specificity', () => {
  it('lets a regex beat a prefix, and tests it against the path without the query', () => {
    const router = routerOf(['{ path: /files, service: files }', '{ pathRegex: "^/files/.*\\\\.json$", service: json }']);
    expect(router.route(request('/files/a.json?download=1'))?.service).toBe('json');
    expect(router.route(request('/files/a.txt'))?.service).toBe('files');
  });

  it('ranks an exact host above a wildcard host above no host', () => {
    const router = routerOf([
      '{ path: /, service: any }',
      '{ host: "*.example.com", service: wildcard }',
      '{ host: "*.eu.example.com", service: eu }',
      '{ host: api.example.com, service: exact }',
    ]);
    expect(router.route(request('/x', { host: 'API.Example.com:443' }))?.service).toBe('exact');
    expect(router.route(request('/x', { host: 'web.example.com' }))?.service).toBe('wildcard');
    expect(router.route(request('/x', { host: 'web.eu.example.com' }))?.service).toBe('eu');
    expect(router.route(request('/x', { host: 'example.com' }))?.service).toBe('any');
    expect(router.route(request('/x', { host: undefined }))?.service).toBe('any');
  });

  it('ranks a host condition above a longer path', () => {
    const router = routerOf(['{ path: /api/user/profile, service: deep }', '{ host: api.example.com, path: /api, service: hosted }']);
    expect(router.route(request('/api/user/profile', { host: 'api.example.com' }))?.service).toBe('hosted');
  });

  it('lets a header condition win over the same path without one, with exact values only', () => {
    const router = routerOf(['{ path: /api, methods: [GET], service: stable }', '{ path: /api, headers: { x-canary: 1 }, service: canary }']);
    expect(router.route(request('/api', { headers: { 'x-canary': '1' } }))?.service).toBe('canary');
    expect(router.route(request('/api', { headers: { 'x-canary': '10' } }))?.service).toBe('stable');
  });

  it('matches a header condition on a header sent twice, or beside another value, as node hands it over', async () => {
    const router = routerOf(['{ path: /api, service: stable }', '{ path: /api, headers: { x-env: canary }, service: canary }']);
    // Node joins repeated lines with ", ": read the headers of real requests rather than guess their shape.
    const headersOf = (lines: string) => headersParsedByNode(`GET /api HTTP/1.1\r\nHost: a\r\n${lines}\r\n`);
    for (const lines of ['X-Env: canary\r\nX-Env: canary\r\n', 'X-Env: prod\r\nX-Env: canary\r\n', 'X-Env: prod, canary\r\n']) {
      expect(router.route(request('/api', { headers: await headersOf(lines) }))?.service, lines).toBe('canary');
    }
    expect(router.route(request('/api', { headers: await headersOf('X-Env: prod\r\nX-Env: canary-2\r\n') }))?.service).toBe('stable');
  });

  it('lets a method condition win over the same path without one and skips it for other methods', () => {
    const router = routerOf(['{ path: /api, service: all }', '{ path: /api, methods: [post, PUT], service: writes }']);
    expect(router.route(request('/api', { method: 'POST' }))?.service).toBe('writes');
    expect(router.route(request('/api', { method: 'GET' }))?.service).toBe('all');
  });

  it('keeps file order between equally specific routes', () => {
    const router = routerOf(['{ path: /api, service: first }', '{ path: /api, service: second }']);
    expect(router.route(request('/api'))?.service).toBe('first');
  });

  it('returns undefined when no route matches', () => {
    const router = routerOf(['{ host: api.example.com, service: api }']);
    expect(router.route(request('/', { host: 'other.example.com' }))).toBeUndefined();
  });
});

describe('Router namespace routes', () => {
  const router = routerOf(['{ namespace: true }', '{ path: /greeter/admin, service: admin }', '{ path: /api, namespace: true }'], ['greeter', 'orders']);

  it.each([
    ['/greeter/say/hello', 'greeter', '/say/hello'],
    ['/greeter', 'greeter', '/'],
    ['/greeter?name=x', 'greeter', '/?name=x'],
    ['/api/orders/7', 'orders', '/7'],
    ['/greeter/admin/x', 'admin', '/greeter/admin/x'],
  ])('maps %s to service %s with path %s', (path, service, upstream) => {
    expect(router.route(request(path))).toMatchObject({ service, path: upstream });
  });

  it.each(['/unknown/x', '/', '/api', '//greeter'])('does not route %s, whose segment names no known service', (path) => {
    expect(router.route(request(path))).toBeUndefined();
  });

  it('decodes the segment, so a registry name with a space or non-ASCII letters is reached by its escaped form', () => {
    const escaped = routerOf(['{ namespace: true }'], ['späce svc', 'a%b']);
    expect(escaped.route(request('/sp%C3%A4ce%20svc/x?y=1'))).toMatchObject({ service: 'späce svc', path: '/x?y=1' });
    expect(escaped.route(request('/a%25b'))).toMatchObject({ service: 'a%b', path: '/' });
    expect(escaped.route(request('/a%b'))).toBeUndefined();
  });

  it('does not decode an escape of a character the segment may carry as it is, so no spelling of a service passes its own route\'s rules', () => {
    // `/pay%3Av2` is not `/pay:v2` to the guarded route (escapes of reserved characters are kept);
    // decoded by the namespace route, it would reach `pay:v2` without the guarded route's middleware.
    const router = routerOf(['{ name: guarded, path: /pay:v2, service: "pay:v2" }', '{ name: open, namespace: true }'], ['pay:v2', 'a+b', 'a/b']);
    expect(router.route(request('/pay:v2/x'))?.name).toBe('guarded');
    for (const path of ['/pay%3Av2/x', '/pay%3av2/x', '/a%2Bb/x', '/a%2Fb/x']) expect(router.route(request(path)), path).toBeUndefined();
    expect(router.route(request('/a+b/x'))).toMatchObject({ name: 'open', service: 'a+b', path: '/x' });
  });

  it('tries namespace routes only after every route to a named service', () => {
    const withFallback = routerOf(['{ host: api.example.com, namespace: true }', '{ service: catch-all }'], ['greeter']);
    expect(withFallback.route(request('/greeter/x', { host: 'api.example.com' }))?.service).toBe('catch-all');
  });
});

describe('Router.namespaceCandidate', () => {
  const router = routerOf(['{ name: api, path: /api, namespace: true }', '{ name: hosted, host: a.test, namespace: true }', '{ name: file, path: /file, service: file }'], ['known']);

  it.each([
    ['/api/orders/7', 'gateway.local', 'api', 'orders', '/7'],
    ['/x/y?z=1', 'a.test', 'hosted', 'x', '/y?z=1'],
    ['/api/known/1', 'gateway.local', 'api', 'known', '/1'],
  ])('names for %s (host %s) the namespace route %s and service %s, known or not, with path %s', (path, host, name, service, upstream) => {
    expect(router.namespaceCandidate(request(path, { host }))).toMatchObject({ name, service, path: upstream });
  });

  it.each(['/other/x', '/api', '/api/', '/api/a%2Bb', '/file/x'])('names none for %s, which no namespace route takes whatever the services', (path) => {
    expect(router.namespaceCandidate(request(path))).toBeUndefined();
  });

  it('names none in a router without namespace routes', () => {
    expect(routerOf(['{ path: /a, service: a }']).namespaceCandidate(request('/b/c'))).toBeUndefined();
  });
});

describe('Router gRPC routes', () => {
  it('maps /package.Service/Method to the registry service package.Service with the path kept whole (namespace: grpc)', () => {
    const router = routerOf(['{ namespace: grpc }'], ['helloworld.Greeter']);
    expect(router.route(request('/helloworld.Greeter/SayHello'))).toMatchObject({ service: 'helloworld.Greeter', path: '/helloworld.Greeter/SayHello' });
    expect(router.route(request('/other.Service/Call'))).toBeUndefined();
  });

  it('routes the calls of one gRPC service by grpcService, which stands for the path prefix /<service>/', () => {
    const router = routerOf(['{ grpcService: helloworld.Greeter, service: greeter }']);
    expect(router.route(request('/helloworld.Greeter/SayHello'))).toMatchObject({ service: 'greeter', path: '/helloworld.Greeter/SayHello' });
    expect(router.route(request('/helloworld.GreeterV2/SayHello'))).toBeUndefined();
  });

  it('refuses grpcService beside a path, and a name that is no gRPC service name', () => {
    expect(() => routerOf(['{ grpcService: a.B, path: /x, service: s }'])).toThrow(/grpcService stands for path/);
    expect(() => routerOf(['{ grpcService: "a/B", service: s }'])).toThrow(/gRPC service name/);
  });
});

describe('routesInMatchOrder', () => {
  it('lists routes in the order the router tries them: named services by specificity, then namespace routes', () => {
    const config = parseConfig('test.yaml', `routes:
  - { name: ns, namespace: true }
  - { name: short, path: /a, service: a }
  - { name: host-ns, host: api.example.com, namespace: true }
  - { name: long, path: /a/b, service: b }
  - { name: regex, pathRegex: "^/x", service: x }
`);
    expect(routesInMatchOrder(config.routes).map((route) => route.name)).toEqual(['regex', 'long', 'short', 'host-ns', 'ns']);
  });
});

describe('normalizeHost', () => {
  it.each([
    ['Example.COM:8080', 'example.com'],
    ['example.com.', 'example.com'],
    ['[::1]:8080', '[::1]'],
    ['[::1]', '[::1]'],
    [undefined, ''],
  ])('normalizes %s to %s', (host, expected) => {
    expect(normalizeHost(host)).toBe(expected);
  });
});
