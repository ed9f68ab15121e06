import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigFileError } from '../../src/errors.ts';
import { GatewayConfigError, loadConfig, parseConfig } from './load.ts';
import { errorOf } from './config-testing.ts';

/** The minimal file of issue 5, which must work as it stands. */
const MINIMAL = `listen: 127.0.0.1:8080
admin: 127.0.0.1:9180
registries: [zk://127.0.0.1:2181/services]
services:
  user: { balancer: weighted-round-robin }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
  - { namespace: true }          # /<service>/rest → service <service>, path /rest
`;


describe('parseConfig', () => {
  it('accepts the minimal file of the issue as it stands', () => {
    const config = parseConfig('gateway.yaml', MINIMAL);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.admin).toEqual({ listen: { host: '127.0.0.1', port: 9180 }, token: undefined });
    expect(config.registries).toEqual([
      { url: 'zk://127.0.0.1:2181/services', location: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/services' }, snapshotPath: resolve('gateway.yaml.registry-snapshot.zk_127.0.0.1_2181_services.json') },
    ]);
    expect(config.services.get('user')?.balancer).toEqual({ algorithm: 'weighted-round-robin' });
    expect(config.routes).toMatchObject([
      { name: '/api/user', path: '/api/user', service: 'user', stripPrefix: true, namespace: false },
      { name: '/', namespace: true, service: undefined },
    ]);
  });

  it('reads the same file written as JSON', () => {
    const json = JSON.stringify({
      listen: '127.0.0.1:8080',
      admin: '127.0.0.1:9180',
      registries: ['zk://127.0.0.1:2181/services'],
      services: { user: { balancer: 'weighted-round-robin' } },
      routes: [{ path: '/api/user', service: 'user', stripPrefix: true }, { namespace: true }],
    });
    // Each file's registry snapshot goes beside it.
    const withoutSnapshots = (config: ReturnType<typeof parseConfig>) => ({ ...config, registries: config.registries.map(({ snapshotPath: _path, ...registry }) => registry) });
    expect(withoutSnapshots(parseConfig('gateway.json', json))).toEqual(withoutSnapshots(parseConfig('gateway.yaml', MINIMAL)));
  });

  it('keeps each registry\'s snapshot beside the config file, where its snapshot says, or none with false', () => {
    const config = parseConfig('/etc/sb/gateway.yaml', `registries:
  - zk://127.0.0.1:2181/services
  - { url: etcd://127.0.0.1:2379/services, snapshot: state/etcd.json }
  - { url: etcd://127.0.0.1:2379/other, snapshot: false }
  - file:instances.yaml
`);
    expect(config.registries.map((registry) => registry.snapshotPath)).toEqual(['/etc/sb/gateway.yaml.registry-snapshot.zk_127.0.0.1_2181_services.json', '/etc/sb/state/etcd.json', undefined, undefined]);
    expect(errorOf('registries: [{ url: "file:instances.yaml", snapshot: x.json }]').message).toMatch(/registries\.0\.snapshot .*a file: registry keeps no snapshot/);
  });

  it('fills every default for an empty file', () => {
    const config = parseConfig('gateway.yaml', '');
    expect(config).toMatchObject({ listen: { host: undefined, port: 8080 }, admin: { listen: { host: '127.0.0.1', port: 9180 } }, registries: [], routes: [], accessLog: true });
    expect(config.forwarding.trustedProxies).toEqual([]);
    expect(config.defaults.balancer).toEqual({ algorithm: 'weighted-round-robin' });
  });

  it('takes a timer duration of up to 24 days, and longer ones where nothing waits on them (an HSTS max-age, a rate, JWT leeways)', async () => {
    const config = parseConfig('gateway.yaml', 'limits: { keepAliveTimeout: 24d }\ndefaults:\n  healthCheck: { interval: 24d }\n');
    expect(config.limits.keepAliveTimeoutMs).toBe(24 * 86_400_000);
    const long = [
      'middlewares:',
      '  hsts: { hsts: { maxAge: 1y } }',
      '  monthly: { rateLimit: { average: 1000, period: 30d } }',
      '  jwt: { jwtAuth: { algorithms: [HS256], secretFile: secret, clockSkew: 30d, cacheTtl: 30d } }',
      'consumers:',
      '  acme: { rateLimit: { average: 1000, period: 30d } }',
    ].join('\n');
    const dir = await mkdtemp(join(tmpdir(), 'sb-durations-'));
    try {
      await writeFile(join(dir, 'secret'), 'a secret of at least thirty-two bytes for HS256');
      expect(() => parseConfig(join(dir, 'gateway.yaml'), long)).not.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads sizes in bytes and binary units up to GiB, as a cache or an upload limit of production size is written', () => {
    const text = 'middlewares:\n  memory: { cache: { maxSize: 2GiB, maxEntrySize: 16MiB } }\n  uploads: { bodyLimit: { maxSize: 1.5g } }\nlimits: { maxHeaderSize: 16k }\n';
    const config = parseConfig('gateway.yaml', text);
    expect(config.middlewares.get('memory')).toMatchObject({ kind: 'cache', settings: { maxBytes: 2 * 1024 ** 3, maxEntryBytes: 16 * 1024 ** 2 } });
    expect(config.middlewares.get('uploads')).toMatchObject({ kind: 'bodyLimit', settings: { maxBytes: 1.5 * 1024 ** 3 } });
    expect(config.limits.maxHeaderSize).toBe(16_384);
  });

  it('ignores top-level x- keys, so settings can be shared through YAML anchors and merge keys', () => {
    const text = 'x-common: &common { stripPrefix: true, hostHeader: upstream }\nroutes:\n  - { <<: *common, path: /a, service: a }\n';
    expect(parseConfig('gateway.yaml', text).routes[0]).toMatchObject({ stripPrefix: true, hostHeader: 'upstream' });
  });
});

describe('parseConfig errors', () => {
  it('names the file, the key path, its line and the unknown field', () => {
    const error = errorOf(MINIMAL.replace('- { namespace: true }          #', '- { path: /x, servce: user }  #'));
    expect(error.message).toBe(
      '/etc/sb/gateway.yaml: routes.1.servce (line 8): unknown field "servce" (did you mean "service"?); routes.1.service (line 8): a route needs a service, or namespace: true',
    );
  });

  it.each([
    ['listen: 127.0.0.1', 'listen (line 1): expected "host:port", ":port", "[ipv6]:port" or a port number'],
    ['registries: [redis://x:1]', 'registries.0 (line 1): invalid registry URL "redis://x:1": unknown scheme "redis"'],
    // A registry listed twice would run as two providers of one name, their statuses and instance sets overwriting each other.
    ['registries: [zk://127.0.0.1:2181/services, etcd://127.0.0.1:2379/services, zk://127.0.0.1:2181/services/]',
      'registries.2 (line 1): zk://127.0.0.1:2181/services/ reads the same registry nodes as registries[0] (zk:127.0.0.1:2181/services): list each registry root once'],
    ['registries:\n  - etcd://127.0.0.1:2379/backends?layout=registrator\n  - { url: "etcd://127.0.0.1:2379/backends", auth: { username: u, passwordFile: p } }',
      'registries.1 (line 3): etcd://127.0.0.1:2379/backends reads the same registry nodes as registries[0] (etcd:http://127.0.0.1:2379/backends)'],
    // The same ensemble or cluster listed in another order, or with host names in another case, is the same registry.
    ['registries: ["zk://a:2181,b:2181/services", "zk://B:2181,a:2181/services/"]',
      'registries.1 (line 1): zk://B:2181,a:2181/services/ reads the same registry nodes as registries[0] (zk:a:2181,b:2181/services): list each registry root once'],
    ['registries: ["etcd://etcd-1:2379,etcd-2:2379/backends", "etcd://ETCD-2:2379,etcd-1:2379,etcd-1:2379/backends"]',
      'registries.1 (line 1): etcd://ETCD-2:2379,etcd-1:2379,etcd-1:2379/backends reads the same registry nodes as registries[0] (etcd:http://etcd-1:2379,http://etcd-2:2379/backends)'],
    ['registries: ["file:i.yaml", "file:./i.yaml"]', 'registries.1 (line 1): file:./i.yaml reads the same registry nodes as registries[0] (file:/'],
    ['defaults:\n  timeouts:\n    headers: "500"', 'defaults.timeouts.headers (line 3): expected a duration'],
    // Past what a Node timer holds it would fire after 1 ms: keep-alive connections closed at once.
    ['limits: { keepAliveTimeout: 30d }', 'limits.keepAliveTimeout (line 1): must be at most 24d (the longest a timer waits)'],
    ['defaults:\n  healthCheck: { interval: 25d }', 'defaults.healthCheck.interval (line 2): must be at most 24d'],
    ['services:\n  a: { timeouts: { connect: 1y } }', 'services.a.timeouts.connect (line 2): must be at most 24d'],
    ['limits: { maxHeaderSize: 1TiB }', 'limits.maxHeaderSize (line 1): expected a size such as 16384, "16KiB", "1MiB" or "1GiB"'],
    ['limits: { maxHeaderSize: 0 }', 'limits.maxHeaderSize (line 1): must be above 0'],
    ['defaults: { balancer: fastest }', 'defaults.balancer (line 1): expected one of random, round-robin'],
    ['services:\n  a: { balancer: { algorithm: p2c-ewma, decay: 0s } }', 'services.a.balancer.decay (line 2): must be above 0'],
    ['services:\n  a:\n    balancer: { algorithm: consistent-hash, key: "header:" }', 'services.a.balancer.key (line 3): expected client-ip, path, header:<name>'],
    ['services:\n  a: { balancer: round-robin, slowStart: { window: 30s } }', 'services.a.slowStart (line 2): slowStart needs a balancer that follows weights (weighted-round-robin, random, least-connections, p2c-ewma), not round-robin'],
    ['defaults: { slowStart: { window: 30s } }\nservices:\n  a: { balancer: consistent-hash }', 'services.a.balancer (line 3): slowStart needs a balancer that follows weights'],
    ['defaults: { slowStart: { window: 0s } }', 'defaults.slowStart.window (line 1): must be above 0'],
    ['defaults: { slowStart: { window: 1s, minWeightPercent: 0 } }', 'defaults.slowStart.minWeightPercent (line 1): must be above 0'],
    ['services:\n  a: { healthCheck: { path: health } }', 'services.a.healthCheck.path (line 2): must start with /'],
    ['services:\n  a: { healthCheck: { path: /he alth } }', 'services.a.healthCheck.path (line 2): must not contain spaces'],
    ['services:\n  a: { healthCheck: { hostHeader: "api internal" } }', 'services.a.healthCheck.hostHeader (line 2): expected a host name'],
    ['defaults: { healthCheck: { interval: 0s } }', 'defaults.healthCheck.interval (line 1): must be above 0'],
    ['defaults: { healthCheck: { unhealthyInterval: 0 } }', 'defaults.healthCheck.unhealthyInterval (line 1): must be above 0'],
    ['defaults: { healthCheck: { timeout: 0ms } }', 'defaults.healthCheck.timeout (line 1): must be above 0'],
    ['defaults: { outlierDetection: { decayInterval: 0s } }', 'defaults.outlierDetection.decayInterval (line 1): must be above 0'],
    // Every ejection would be cut to the max; the detector once raised the max to the base without a word.
    ['defaults: { outlierDetection: { baseEjectionTime: 2m, maxEjectionTime: 1m } }', 'defaults.outlierDetection.maxEjectionTime (line 1): must not be below baseEjectionTime (120s): every ejection would be cut to it'],
    ['services:\n  a: { outlierDetection: { maxEjectionTime: 10s } }', 'services.a.outlierDetection.maxEjectionTime (line 2): must not be below the default baseEjectionTime (30s)'],
    ['defaults: { outlierDetection: { baseEjectionTime: 1m } }\nservices:\n  a: { outlierDetection: { maxEjectionTime: 45s } }', 'services.a.outlierDetection.maxEjectionTime (line 3): must not be below baseEjectionTime from defaults (60s)'],
    ['defaults: { outlierDetection: { maxEjectionTime: 1m } }\nservices:\n  a: { outlierDetection: { baseEjectionTime: 90s } }', 'services.a.outlierDetection.baseEjectionTime (line 3): must not be above maxEjectionTime from defaults (60s): every ejection would be cut to it (set maxEjectionTime here too)'],
    ['services:\n  a: { instances: [ "10.0.0.1" ] }', 'services.a.instances.0 (line 2): expected "host:port"'],
    ['services:\n  a: { instances: [ { host: "10.0.0.1:8080", port: 8080 } ] }', 'services.a.instances.0.host (line 2): must be a host name, an IPv4 address or an IPv6 address, without brackets or port'],
    ['services:\n  a/b: {}', 'services.a/b'],
    ['routes:\n  - { path: /a, pathRegex: "^/a", service: a }', 'routes.0.pathRegex (line 2): a route has either path or pathRegex, not both'],
    ['routes:\n  - { pathRegex: "(", service: a }', 'routes.0.pathRegex (line 2): is not a valid regular expression'],
    ['routes:\n  - { pathRegex: "^/(a+)+$", service: a }', 'routes.0.pathRegex (line 2): can take exponential time on a short path (ReDoS): a+ repeats inside (a+)+'],
    ['routes:\n  - { pathRegex: "^/(\\\\w|\\\\d)*$", service: a }', 'routes.0.pathRegex (line 2): can take exponential time on a short path (ReDoS): the alternatives \\w and \\d of (\\w|\\d) both match "0"'],
    ['routes:\n  - { service: a, rewrite: { pattern: "^/(.*)-(.*)$", replacement: /x } }', 'routes.0.rewrite.pattern (line 2): can take polynomial time'],
    ['middlewares:\n  r: { rewrite: { pattern: "/+$", replacement: / } }', 'middlewares.r.rewrite.pattern (line 2): can take quadratic time'],
    ['routes:\n  - { service: a, rewrite: { pattern: "^/old/", replacement: /a/../b/ } }', 'routes.0.rewrite.replacement (line 2): makes the dot segment ".." in every path it rewrites, whatever the request, so each would be refused with 400 rewritten-dot-segment'],
    ['middlewares:\n  r: { rewrite: { pattern: "^/reports/(.*)$", replacement: "/data/%2E%2E/$1" } }', 'middlewares.r.rewrite.replacement (line 2): makes the dot segment "%2E%2E" (a dot spelt %2E counts'],
    ['routes:\n  - { host: "api.example.com:80", service: a }', 'routes.0.host (line 2): expected a host name'],
    ['routes:\n  - { service: a, stripPrefix: true }', 'routes.0.stripPrefix (line 2): stripPrefix needs a path prefix to strip'],
    ['routes:\n  - { service: a, requestHeaders: { set: { "bad header": x } } }', 'routes.0.requestHeaders.set.bad header (line 2): "bad header" is not a valid header name (RFC 9110 §5.1: letters, digits and !#$%&\'*+-.^_`|~ only, no spaces or ":")'],
    ['routes:\n  - { service: a, requestHeaders: { remove: [x-a, "x:b"] } }', 'routes.0.requestHeaders.remove.1 (line 2): "x:b" is not a valid header name'],
    ['routes:\n  - { service: a, responseHeaders: { set: { x-a: "v\\r\\nSet-Cookie: y" } } }', 'must not contain CR, LF or NUL'],
    ['routes:\n  - { service: a, responseHeaders: { set: { x-team: "李" } } }', 'routes.0.responseHeaders.set.x-team (line 2): must hold only tab, printable ASCII and Latin-1 characters'],
    // Set by hand, the framing cuts answers short (or runs them into the next) and fails every upload 400.
    ['routes:\n  - { service: a, responseHeaders: { set: { Content-Length: 2 } } }', 'routes.0.responseHeaders.set (line 2): cannot set content-length: the gateway frames the body itself'],
    ['routes:\n  - { service: a, requestHeaders: { set: { content-length: 5 } } }', 'routes.0.requestHeaders.set (line 2): cannot set content-length: the gateway frames the body itself'],
    ['routes:\n  - { service: a, responseHeaders: { set: { transfer-encoding: chunked } } }', 'routes.0.responseHeaders.set (line 2): cannot set transfer-encoding: the gateway frames the body itself'],
    ['middlewares:\n  h: { headers: { request: { set: { Transfer-Encoding: chunked } } } }', 'middlewares.h.headers.request.set (line 2): cannot set transfer-encoding: the gateway frames the body itself'],
    // Hop-by-hop: a Trailer on an answer made node:http refuse to write every answer with a length; on a request they vanished unseen.
    ['routes:\n  - { service: a, responseHeaders: { set: { Trailer: x-sum } } }', 'routes.0.responseHeaders.set (line 2): cannot set trailer: a hop-by-hop header belongs to one connection, and the gateway keeps its own (RFC 9110 §7.6.1)'],
    ['routes:\n  - { service: a, requestHeaders: { set: { TE: trailers } } }', 'routes.0.requestHeaders.set (line 2): cannot set te: a hop-by-hop header'],
    ['routes:\n  - { service: a, requestHeaders: { set: { Connection: close } } }', 'routes.0.requestHeaders.set (line 2): cannot set connection: a hop-by-hop header'],
    ['middlewares:\n  h: { headers: { request: { set: { keep-alive: "timeout=5" } } } }', 'middlewares.h.headers.request.set (line 2): cannot set keep-alive: a hop-by-hop header'],
    ['middlewares:\n  h: { headers: { request: { set: { Proxy-Authorization: "Basic eDp5" } } } }', 'middlewares.h.headers.request.set (line 2): cannot set proxy-authorization: a hop-by-hop header'],
    ['middlewares:\n  h: { headers: { response: { set: { Upgrade: h2c } } } }', 'middlewares.h.headers.response.set (line 2): cannot set upgrade: a hop-by-hop header'],
    ['routes:\n  - { service: a, responseHeaders: { set: { Proxy-Authenticate: Basic } } }', 'routes.0.responseHeaders.set (line 2): cannot set proxy-authenticate: a hop-by-hop header'],
    ['services: { api: { circuitBreaker: { fallback: { status: 200, headers: { Trailer: x-sum } } } } }', 'services.api.circuitBreaker.fallback.headers (line 1): cannot set trailer: a hop-by-hop header'],
    // An answer may close its connection, and say nothing else of it: the gateway keeps the rest alive, and announces its own idle timeout.
    ['routes:\n  - { service: a, responseHeaders: { set: { Connection: keep-alive } } }', 'routes.0.responseHeaders.set (line 2): cannot set connection to "keep-alive" on an answer, only to close (the connection then closes after it)'],
    ['middlewares:\n  h: { headers: { response: { set: { Connection: "close, x-a" } } } }', 'middlewares.h.headers.response.set (line 2): cannot set connection to "close, x-a" on an answer, only to close'],
    ['routes:\n  - { service: a, responseHeaders: { set: { Keep-Alive: "timeout=600" } } }', 'routes.0.responseHeaders.set (line 2): cannot set keep-alive on an answer: the gateway announces its own, the limits.keepAliveTimeout after which it closes an idle connection'],
    ['services: { api: { circuitBreaker: { fallback: { status: 503, headers: { Connection: keep-alive } } } } }', 'services.api.circuitBreaker.fallback.headers (line 1): cannot set connection to "keep-alive" on an answer'],
    ['routes:\n  - { service: a, headers: { x-tenant: "日本" } }', 'routes.0.headers.x-tenant (line 2): must hold only tab, printable ASCII and Latin-1 characters, as a request header read by Node does (it could never match)'],
    ['routes:\n  - { service: a, headers: { x-tenant: "a\\nb" } }', 'routes.0.headers.x-tenant (line 2): must not contain CR, LF or NUL'],
    ['routes:\n  - { service: a, headers: { x-tenant: " a" } }', 'routes.0.headers.x-tenant (line 2): must not start or end with a space or tab, which a request header never does (it could never match)'],
    ['routes:\n  - { service: a, headers: { x-tenant: "a\\t" } }', 'routes.0.headers.x-tenant (line 2): must not start or end with a space or tab'],
    ['routes:\n  - { service: a, requestHeaders: { set: { x-team: " blue" } } }', 'routes.0.requestHeaders.set.x-team (line 2): must not start or end with a space or tab'],
    ['middlewares:\n  h: { headers: { response: { set: { x-a: "b\\t" } } } }', 'middlewares.h.headers.response.set.x-a (line 2): must not start or end with a space or tab'],
    ['middlewares:\n  h: { headers: { request: { set: { x-a: "a\\x01b" } } } }', 'middlewares.h.headers.request.set.x-a (line 2): must hold only tab, printable ASCII and Latin-1 characters'],
    ['routes:\n  - { name: a, service: a }\n  - { name: a, service: b }', 'routes.1.name (line 3): route name "a" is already used by routes.0'],
    ['forwarding: { trustedProxies: [10.0.0.0/33] }', 'forwarding.trustedProxies.0 (line 1): expected an IP address, a CIDR'],
    ['limits: { headersTimeout: 10m, requestTimeout: 1m }', 'limits.headersTimeout (line 1): must not exceed limits.requestTimeout'],
    // A tcp entry point with tls forwards the bytes it decrypted: upstream TLS on its service was ignored without a word.
    ['entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, tls: { certificates: [{ certFile: a.pem, keyFile: a-key.pem }] } }\nservices:\n  pg: { tls: { serverName: pg.internal } }', 'services.pg.tls (line 4): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would ignore it'],
    ['entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, tls: { certificates: [{ certFile: a.pem, keyFile: a-key.pem }] } }\nservices:\n  pg: { protocol: https }', 'services.pg.protocol (line 4): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would send its instances clear bytes where they expect TLS (https)'],
    ['entryPoints:\n  web: { listen: 8080 }\n  db: { listen: 5433, protocol: tcp, tls: { certificates: [{ certFile: a.pem, keyFile: a-key.pem }] }, sni: { a.example: api } }\nservices:\n  api: { protocol: h2, tls: { verify: false } }\nroutes:\n  - { path: /, service: api }', 'services.api.protocol (line 5): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would send its instances clear bytes where they expect TLS (h2); routes.0 uses it over HTTP, where it applies, but the tcp entry point would not'],
    ['limits: { headersTimeout: 0 }', 'limits.headersTimeout (line 1): must be above 0: it also bounds the TLS handshake'],
    ['Listen: 8080', 'Listen (line 1): unknown field "Listen" (did you mean "listen"?)'],
    ['balancer: random', 'balancer (line 1): unknown field "balancer" (it belongs in another section)'],
    ['- 1', '(root) (line 1): expected object, received array'],
    ['listen: [1\nadmin: 2', 'line 2: not valid YAML or JSON'],
    ['listen: 1\nlisten: 2', 'line 2: not valid YAML or JSON: Map keys must be unique'],
  ])('refuses %j with "%s"', (text, expected) => {
    const error = errorOf(text);
    expect(error).toBeInstanceOf(GatewayConfigError);
    expect(error).toBeInstanceOf(ConfigFileError);
    expect(error.code).toBe('SB_CONFIG_INVALID');
    expect(error.message).toContain(`/etc/sb/gateway.yaml: `);
    expect(error.message).toContain(expected);
  });

  it.each([
    ['foo: 1', 'foo (line 1): unknown field "foo"'],
    ['routes:\n  - { service: a, form: x }', 'routes.0.form (line 2): unknown field "form"'],
    ['routes:\n  - { service: a, servce: b }', 'routes.0.servce (line 2): unknown field "servce" (did you mean "service"?)'],
    ['services:\n  a: { balancer: { algorithm: p2c-ewma, decy: 1s } }', 'services.a.balancer.decy (line 2): unknown field "decy" (did you mean "decay"?)'],
    ['entryPoints:\n  web: { listen: ":1", protocl: http }', 'entryPoints.web.protocl (line 2): unknown field "protocl" (did you mean "protocol"?)'],
  ])('suggests for %j only a key valid where it stands: "%s"', (text, expected) => {
    // The whole message: a hint from another section (jwtAuth's "from" for "foo") would be a wrong lead.
    expect(errorOf(text).message).toBe(`/etc/sb/gateway.yaml: ${expected}`);
  });

  it('takes Connection: close on every edit of an answer, which then closes its connection, and keeps the value as written', () => {
    const text = [
      'services: { api: { circuitBreaker: { fallback: { status: 503, headers: { Connection: close } } } } }',
      'middlewares:',
      '  h: { headers: { response: { set: { connection: Close } } } }',
      '  r: { respond: { status: 403, headers: { Connection: close } } }',
      'routes:',
      '  - { service: api, responseHeaders: { set: { Connection: CLOSE } } }',
      '',
    ].join('\n');
    const config = parseConfig('gateway.yaml', text);
    expect(config.routes[0]!.responseHeaders?.set).toEqual({ connection: 'CLOSE' });
    expect(config.middlewares.get('h')).toMatchObject({ settings: { response: { set: { connection: 'Close' } } } });
    expect(config.middlewares.get('r')).toMatchObject({ settings: { headers: { connection: 'close' } } });
  });

  it('takes a baseEjectionTime above 300s without a maxEjectionTime (the cap follows the base, as Envoy\'s does), and a max equal to the base', () => {
    const text = 'defaults: { outlierDetection: { maxEjectionTime: 1m } }\nservices:\n  a: { outlierDetection: { baseEjectionTime: 1m } }\n  b: { outlierDetection: { baseEjectionTime: 10m, maxEjectionTime: 10m } }\n';
    expect(() => parseConfig('gateway.yaml', text)).not.toThrow();
    expect(() => parseConfig('gateway.yaml', 'defaults: { outlierDetection: { baseEjectionTime: 10m } }\n')).not.toThrow();
  });

  it('takes a rewrite whose replacement makes a dot segment only from what the request holds (refused per request)', () => {
    const text = 'middlewares:\n  r: { rewrite: { pattern: "^/api/([^/]+)\\\\.json$", replacement: /data/$1/public } }\n  s: { rewrite: { pattern: "^/x", replacement: /a/.. } }\n';
    const { middlewares } = parseConfig('gateway.yaml', text);
    expect(middlewares.get('r')).toEqual({ kind: 'rewrite', settings: { pattern: '^/api/([^/]+)\\.json$', replacement: '/data/$1/public' } });
    expect(middlewares.get('s')).toEqual({ kind: 'rewrite', settings: { pattern: '^/x', replacement: '/a/..' } });
  });

  it('takes a regex the backtracking check refuses when allowUnsafeRegex: true stands beside it, and names that key when it does not', () => {
    const text = 'routes:\n  - { pathRegex: "^/(a+)+$", allowUnsafeRegex: true, service: a, rewrite: { pattern: "^/(.*)-(.*)$", replacement: /x, allowUnsafeRegex: true } }\n';
    expect(parseConfig('gateway.yaml', text).routes[0]).toMatchObject({ pathRegex: '^/(a+)+$', rewrite: { pattern: '^/(.*)-(.*)$', replacement: '/x' } });
    expect(errorOf('routes:\n  - { pathRegex: "^/(a+)+$", service: a }').message).toMatch(/; or set allowUnsafeRegex: true beside it to accept it$/);
    // The route's key covers its pathRegex only: the rewrite beside it is checked on its own.
    expect(errorOf('routes:\n  - { pathRegex: "^/x", allowUnsafeRegex: true, service: a, rewrite: { pattern: "/+$", replacement: / } }').message).toContain('routes.0.rewrite.pattern');
  });

  it('reports every problem of the file at once, in line order', () => {
    const error = errorOf('routes:\n  - { service: a, methodz: [GET] }\nlisten: x\n');
    expect(error.issues.map((issue) => [issue.keyPath, issue.line])).toEqual([
      ['routes.0.methodz', 2],
      ['listen', 3],
    ]);
  });
});

describe('loadConfig', () => {
  it('reads and parses a file, and names a missing one in its error', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'sb-config-'));
    try {
      const path = join(folder, 'gateway.yaml');
      await writeFile(path, MINIMAL);
      expect((await loadConfig(path)).listen.port).toBe(8080);
      await expect(loadConfig(join(folder, 'missing.yaml'))).rejects.toThrow(`${join(folder, 'missing.yaml')}: cannot read the file (ENOENT)`);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
