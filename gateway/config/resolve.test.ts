import { describe, expect, it } from 'vitest';
import { decodeInstance } from '../../src/discovery/instance-codec.ts';
import { startSwitchableBackend } from '../../src/health/health-testing.ts';
import { retryConditionOf, serviceBalancerOptions, serviceSettings, staticInstanceLists, upstreamPolicy } from './convert.ts';
import { DEFAULT_HEALTH_CHECK, DEFAULT_OUTLIER_DETECTION, DEFAULT_RETRY_POLICY, DEFAULT_UPSTREAM_TIMEOUTS } from './defaults.ts';
import { parseConfig } from './load.ts';

const FULL = `
defaults:
  timeouts: { headers: 5s }
  healthCheck: { path: /ready, interval: 2s }
  retries: { attempts: 2 }
services:
  user:
    timeouts: { connect: 250ms, websocketIdle: 10m }
    healthCheck: { type: tcp, timeout: 1500 }
  orders:
    healthCheck: false
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 10s }
    retries: false
  search:
    balancer: { algorithm: consistent-hash, key: "header:X-User", boundedLoadFactor: 1.25 }
    panicThreshold: 0
    removalGrace: 0
  pricing:
    balancer: { algorithm: p2c-ewma, decay: 5s }
    outlierDetection: false
    instances:
      - 10.0.0.1:8080
      - { id: p-2, host: "::1", port: 8081, weight: 3, metadata: { zone: a } }
routes:
  - { path: /search, service: search, timeouts: { headers: 100ms, websocketIdle: 2m }, retries: { attempts: 1 } }
`;

describe('resolved service settings', () => {
  const config = parseConfig('gateway.yaml', FULL);

  it('merges each service over the defaults section by section', () => {
    expect(serviceSettings(config, 'user').timeouts).toEqual({ connectMs: 250, headersMs: 5_000, idleBodyMs: DEFAULT_UPSTREAM_TIMEOUTS.idleBodyMs, websocketIdleMs: 600_000 });
    expect(serviceSettings(config, 'user').healthCheck).toEqual({ ...DEFAULT_HEALTH_CHECK, type: 'tcp', path: '/ready', intervalMs: 2_000, unhealthyIntervalMs: 2_000, timeoutMs: 1_500 });
    expect(serviceSettings(config, 'user').retries).toEqual({ ...DEFAULT_RETRY_POLICY, attempts: 2 });
  });

  it('gives a service that is not declared the defaults', () => {
    expect(serviceSettings(config, 'never-declared')).toBe(config.defaults);
    expect(config.defaults.healthCheck).toMatchObject({ path: '/ready', intervalMs: 2_000 });
  });

  it('turns sections off with false and keeps the rest', () => {
    const orders = serviceSettings(config, 'orders');
    expect(orders.healthCheck).toBe(false);
    expect(orders.outlierDetection).toEqual({ ...DEFAULT_OUTLIER_DETECTION, consecutiveErrors: 3, baseEjectionMs: 10_000 });
    expect(orders.retries.attempts).toBe(1);
  });

  it('leaves active checks off and outlier detection on when nothing is said', () => {
    const bare = parseConfig('gateway.yaml', 'services: { a: }');
    expect(serviceSettings(bare, 'a')).toMatchObject({ healthCheck: false, outlierDetection: DEFAULT_OUTLIER_DETECTION, panicThresholdPercent: 50, removalGraceMs: 30_000 });
    expect(serviceSettings(parseConfig('gateway.yaml', 'defaults: { healthCheck: true }'), 'a').healthCheck).toEqual(DEFAULT_HEALTH_CHECK);
  });
});

describe('serviceBalancerOptions', () => {
  const config = parseConfig('gateway.yaml', FULL);

  it('converts a consistent-hash balancer with its key source and bounded-load factor', () => {
    const options = serviceBalancerOptions(serviceSettings(config, 'search'));
    expect(options.balancer).toEqual({ algorithm: 'consistent-hash', key: { from: 'header', name: 'X-User' }, balanceFactor: 1.25 });
    expect(options.health).toMatchObject({ panicThresholdPercent: 0, removalGraceMs: 0 });
  });

  it('builds the active check with its probe and intervals, and passes outlier settings through', () => {
    const options = serviceBalancerOptions(serviceSettings(config, 'user'));
    expect(options.health?.active).toMatchObject({ intervalMs: 2_000, unhealthyIntervalMs: 2_000, timeoutMs: 1_500, healthyThreshold: 2, unhealthyThreshold: 3 });
    expect(options.health?.active?.probe).toBeTypeOf('function');
    expect(options.health?.outlier).toEqual(DEFAULT_OUTLIER_DETECTION);
  });

  it('passes decay of p2c-ewma, a disabled outlier detection and the active check inherited from defaults', () => {
    const options = serviceBalancerOptions(serviceSettings(config, 'pricing'));
    expect(options.balancer).toEqual({ algorithm: 'p2c-ewma', decayMs: 5_000 });
    expect(options.health?.outlier).toBe(false);
    expect(options.health?.active).toMatchObject({ intervalMs: 2_000 });
  });

  it("passes slow start with Envoy's defaults filled in, inherits it from defaults, and lets a service turn it off", () => {
    const text = 'defaults: { slowStart: { window: 30s } }\nservices:\n  a: {}\n  b: { slowStart: { window: 4s, aggression: 2, minWeightPercent: 5 } }\n  c: { balancer: round-robin, slowStart: false }';
    const parsed = parseConfig('gateway.yaml', text);
    expect(serviceBalancerOptions(serviceSettings(parsed, 'a')).slowStart).toEqual({ windowMs: 30_000, aggression: 1, minWeightPercent: 10 });
    expect(serviceBalancerOptions(serviceSettings(parsed, 'b')).slowStart).toEqual({ windowMs: 4_000, aggression: 2, minWeightPercent: 5 });
    expect(serviceBalancerOptions(serviceSettings(parsed, 'c'))).not.toHaveProperty('slowStart');
  });

  it('points the active check at healthCheck.port of the instance\'s host, inherited from defaults, and refuses a port out of range', async () => {
    const management = await startSwitchableBackend();
    try {
      const text = `defaults: { healthCheck: { port: ${management.target.port} } }\nservices: { a: {}, b: { healthCheck: { type: tcp } } }`;
      const parsed = parseConfig('gateway.yaml', text);
      // The instances' own port refuses: only a check of the management port passes.
      const instance = { address: '127.0.0.1:1', host: '127.0.0.1', port: 1, protocol: 'http' as const };
      for (const service of ['a', 'b']) {
        const probe = serviceBalancerOptions(serviceSettings(parsed, service)).health?.active?.probe;
        expect(await probe!(instance, AbortSignal.timeout(5_000))).toMatchObject({ healthy: true });
      }
      expect(management.requests).toEqual([{ path: '/health', host: `127.0.0.1:${management.target.port}` }]);
    } finally {
      await management.close();
    }
    expect(() => parseConfig('gateway.yaml', 'services: { a: { healthCheck: { port: 0 } } }')).toThrow('services.a.healthCheck.port');
    expect(() => parseConfig('gateway.yaml', 'services: { a: { healthCheck: { port: 65536 } } }')).toThrow('services.a.healthCheck.port');
  });

  it("speaks healthCheck.protocol instead of the instance's: a gRPC instance checked by HTTP GET on its management port", async () => {
    const management = await startSwitchableBackend();
    try {
      const port = management.target.port;
      const text = `services:\n  spoken: { healthCheck: { protocol: http, port: ${port}, path: /healthz } }\n  own: { healthCheck: { port: ${port}, path: /healthz } }`;
      const parsed = parseConfig('gateway.yaml', text);
      const instance = { address: '127.0.0.1:1', host: '127.0.0.1', port: 1, protocol: 'grpc' as const };
      const probeOf = (service: string) => serviceBalancerOptions(serviceSettings(parsed, service)).health!.active!.probe;
      expect(await probeOf('spoken')(instance, AbortSignal.timeout(5_000))).toEqual({ healthy: true, detail: 'status 200' });
      management.status = 503;
      expect(await probeOf('spoken')(instance, AbortSignal.timeout(5_000))).toEqual({ healthy: false, detail: 'status 503' });
      expect(management.requests).toEqual([
        { path: '/healthz', host: `127.0.0.1:${port}` },
        { path: '/healthz', host: `127.0.0.1:${port}` },
      ]);
      // Without it the check speaks gRPC (HTTP/2) to the HTTP/1.1 listener and fails whatever /healthz says.
      management.status = 200;
      expect(await probeOf('own')(instance, AbortSignal.timeout(5_000))).toMatchObject({ healthy: false });
    } finally {
      await management.close();
    }
  });

  it('makes a check that names a protocol an http check and drops an inherited protocol from a tcp one', () => {
    const text = 'defaults: { healthCheck: { type: tcp } }\nservices:\n  a: { healthCheck: { protocol: https } }\n  b: { healthCheck: { protocol: grpc } }\n  c: { healthCheck: { type: tcp } }';
    const parsed = parseConfig('gateway.yaml', text);
    expect(serviceSettings(parsed, 'a').healthCheck).toMatchObject({ type: 'http', protocol: 'https' });
    const layered = parseConfig('gateway.yaml', 'defaults: { healthCheck: { protocol: grpc } }\nservices: { a: {}, c: { healthCheck: { type: tcp } } }');
    expect(serviceSettings(layered, 'a').healthCheck).toMatchObject({ type: 'http', protocol: 'grpc' });
    expect(serviceSettings(layered, 'c').healthCheck).toMatchObject({ type: 'tcp', protocol: undefined });
  });

  it.each([
    ['{ protocol: tcp }', 'services.a.healthCheck.protocol', 'a check that only connects is type: tcp'],
    ['{ type: tcp, path: /healthz }', 'services.a.healthCheck.path', 'a tcp check only opens a connection: path applies to http checks'],
    ['{ type: tcp, protocol: http }', 'services.a.healthCheck.protocol', 'a tcp check only opens a connection: protocol applies to http checks'],
    ['{ type: tcp, expectedStatuses: [200] }', 'services.a.healthCheck.expectedStatuses', 'a tcp check only opens a connection'],
    ['{ protocol: grpc, path: /healthz }', 'services.a.healthCheck.path', 'a grpc check asks grpc.health.v1.Health/Check and passes on SERVING: path does not apply'],
    ['{ protocol: grpcs, expectedStatuses: [200] }', 'services.a.healthCheck.expectedStatuses', 'expectedStatuses does not apply'],
    ['{ protocol: http, grpcService: pkg.Svc }', 'services.a.healthCheck.grpcService', 'an http check sends GET path: grpcService applies to grpc and grpcs checks'],
  ])('refuses healthCheck %s with its path and reason', (check, path, reason) => {
    expect(() => parseConfig('gateway.yaml', `services: { a: { healthCheck: ${check} } }`)).toThrow(path);
    expect(() => parseConfig('gateway.yaml', `services: { a: { healthCheck: ${check} } }`)).toThrow(reason);
  });

  it.each([
    ['grpc', '{ path: /healthz }', 'services.a.healthCheck.path', "path does not apply (use grpcService); the check speaks the service's protocol, grpc"],
    ['grpcs', '{ expectedStatuses: [200] }', 'services.a.healthCheck.expectedStatuses', 'a grpcs check asks grpc.health.v1.Health/Check'],
    ['h2c', '{ grpcService: pkg.Svc }', 'services.a.healthCheck.grpcService', "grpcService applies to grpc and grpcs checks; the check speaks the service's protocol, h2c"],
  ])('refuses a service of protocol %s with healthCheck %s, which its check would ignore, with its path and reason', (protocol, check, path, reason) => {
    const text = `services: { a: { protocol: ${protocol}, healthCheck: ${check} } }`;
    expect(() => parseConfig('gateway.yaml', text)).toThrow(path);
    expect(() => parseConfig('gateway.yaml', text)).toThrow(reason);
  });

  it.each([
    // The check names its own protocol: the path is asked over HTTP.
    'services: { a: { protocol: grpc, healthCheck: { protocol: http, path: /healthz } } }',
    'services: { a: { protocol: grpc, healthCheck: { type: tcp } } }',
    // A path in defaults serves the services that speak HTTP; one of grpc ignores it.
    'defaults: { healthCheck: { path: /healthz } }\nservices: { a: { protocol: grpc, healthCheck: true }, b: {} }',
    'defaults: { protocol: grpc, healthCheck: { path: /healthz } }\nservices: { a: { protocol: http } }',
    // The check inherits the protocol defaults name for it: the path is asked over HTTP, grpcService over gRPC.
    'defaults: { healthCheck: { protocol: http } }\nservices: { a: { protocol: grpc, healthCheck: { path: /healthz } }, b: {} }',
    'defaults: { healthCheck: { protocol: grpc } }\nservices: { a: { protocol: http, healthCheck: { grpcService: pkg.Svc } } }',
  ])('accepts %s', (text) => {
    expect(() => parseConfig('gateway.yaml', text)).not.toThrow();
  });

  it('defaults the consistent-hash key to the client IP', () => {
    const named = parseConfig('gateway.yaml', 'services: { a: { balancer: consistent-hash } }');
    expect(serviceBalancerOptions(serviceSettings(named, 'a')).balancer).toEqual({ algorithm: 'consistent-hash', key: { from: 'client-ip' } });
  });
});

describe('upstreamPolicy', () => {
  const config = parseConfig('gateway.yaml', FULL);

  it('applies the route overrides over the service settings', () => {
    expect(upstreamPolicy(serviceSettings(config, 'search'), config.routes[0])).toEqual({
      retries: 0,
      retryOn: DEFAULT_RETRY_POLICY.retryOn,
      connectTimeoutMs: DEFAULT_UPSTREAM_TIMEOUTS.connectMs,
      connection: {
        connectTimeoutMs: DEFAULT_UPSTREAM_TIMEOUTS.connectMs,
        tls: { ca: undefined, cert: undefined, key: undefined, serverName: undefined, verify: true },
        key: `${DEFAULT_UPSTREAM_TIMEOUTS.connectMs},true,,,,`,
      },
      headersTimeoutMs: 100,
      bodyTimeoutMs: DEFAULT_UPSTREAM_TIMEOUTS.idleBodyMs,
      websocketIdleTimeoutMs: 120_000,
    });
  });

  it('uses the service settings alone without a route', () => {
    expect(upstreamPolicy(serviceSettings(config, 'user'))).toMatchObject({ retries: 1, connectTimeoutMs: 250, headersTimeoutMs: 5_000, websocketIdleTimeoutMs: 600_000 });
    expect(upstreamPolicy(serviceSettings(config, 'orders')).websocketIdleTimeoutMs).toBe(DEFAULT_UPSTREAM_TIMEOUTS.websocketIdleMs);
  });

  it.each([
    ['connect-refused', 'connect-failure'],
    ['connect-timeout', 'connect-failure'],
    ['upstream-tls', 'connect-failure'],
    ['unsupported-protocol', undefined],
    ['pool-closed', undefined],
    ['reset-before-headers', 'reset'],
    ['upstream-protocol', 'reset'],
    ['http2-protocol-error', 'reset'],
    ['upstream-refused', 'reset'],
    ['headers-timeout', 'headers-timeout'],
    ['reset-after-headers', undefined],
    ['body-timeout', undefined],
    ['http-5xx', undefined],
    ['cancelled', undefined],
    ['deadline-exceeded', undefined],
  ] as const)('files upstream failure %s under retry condition %s', (errorClass, condition) => {
    expect(retryConditionOf(errorClass)).toBe(condition);
  });
});

describe('staticInstanceLists', () => {
  it('turns static instances into registry entries the instance codec decodes', () => {
    const lists = staticInstanceLists(parseConfig('gateway.yaml', FULL));
    expect([...lists.keys()]).toEqual(['pricing']);
    const decoded = lists.get('pricing')!.map((raw) => decodeInstance(raw));
    expect(decoded.map((result) => (result.ok ? result.instance : result.error.message))).toEqual([
      { id: '10.0.0.1:8080', service: 'pricing', host: '10.0.0.1', port: 8080, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
      { id: 'p-2', service: 'pricing', host: '::1', port: 8081, weight: 3, protocol: 'http', protocolDefaulted: true, metadata: { zone: 'a' } },
    ]);
  });
});

describe('values', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2_000],
    ['1.5m', 90_000],
    ['1h', 3_600_000],
    ['1500', undefined],
    [1500, 1_500],
    [0, 0],
  ])('reads duration %j as %s ms', (value, ms) => {
    const text = `shutdown: { drainTimeout: ${JSON.stringify(value)} }`;
    if (ms === undefined) expect(() => parseConfig('g.yaml', text)).toThrow('expected a duration');
    else expect(parseConfig('g.yaml', text).shutdown.drainTimeoutMs).toBe(ms);
  });

  it.each([
    ['2', 2, 10_000],
    ['auto', 'auto', 10_000],
    ['{ count: 4, heartbeatTimeout: 5s }', 4, 5_000],
    ['{ count: 2, heartbeatTimeout: 0 }', 2, 0],
  ])('reads workers %s as %j workers with a %j ms heartbeat bound', (value, workers, heartbeatMs) => {
    const config = parseConfig('g.yaml', `workers: ${value}`);
    expect([config.workers, config.workerHeartbeatTimeoutMs]).toEqual([workers, heartbeatMs]);
  });

  it.each([
    ['{ count: 2, heartbeatTimeout: 2s }', 'workers.heartbeatTimeout (line 1): must be 0 (no watchdog) or at least 3s'],
    ['{ count: 0 }', 'workers.count (line 1): expected auto or a whole number from 1 to 256'],
    ['0', 'workers (line 1): expected auto or a whole number from 1 to 256'],
    ['257', 'workers (line 1): expected auto or a whole number from 1 to 256'],
    ['1.5', 'workers (line 1): expected auto, a whole number from 1 to 256, or { count, heartbeatTimeout }'],
    ['{ count: 2, heartbeat: 5s }', 'unknown field "heartbeat"'],
    ['{ heartbeatTimeout: 5s }', 'workers.count (line 1): expected auto or a whole number from 1 to 256'],
    ['{ count: many }', 'workers.count (line 1): expected auto or a whole number from 1 to 256'],
    ['many', 'workers (line 1): expected auto, a whole number from 1 to 256, or { count, heartbeatTimeout }'],
  ])('refuses workers %s', (value, message) => {
    expect(() => parseConfig('g.yaml', `workers: ${value}`)).toThrow(message);
  });

  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['"[::1]:9000"', { host: '::1', port: 9000 }],
    ['":8080"', { host: undefined, port: 8080 }],
    ['0', { host: undefined, port: 0 }],
  ])('reads listen address %s', (value, expected) => {
    expect(parseConfig('g.yaml', `listen: ${value}`).listen).toEqual(expected);
  });

  it.each([
    ['16384', 16_384],
    ['"32KiB"', 32_768],
    ['"1m"', 1_048_576],
  ])('reads header size %s as %d bytes', (value, bytes) => {
    expect(parseConfig('g.yaml', `limits: { maxHeaderSize: ${value} }`).limits.maxHeaderSize).toBe(bytes);
  });

  it('turns the admin listener off with false', () => {
    expect(parseConfig('g.yaml', 'admin: false').admin).toBeUndefined();
  });

  it.each([
    ['127.0.0.1:9999', { listen: { host: '127.0.0.1', port: 9999 }, token: undefined }],
    ['{ listen: "[::1]:9181" }', { listen: { host: '::1', port: 9181 }, token: undefined }],
    ['{ token: 0123456789abcdef }', { listen: { host: '127.0.0.1', port: 9180 }, token: '0123456789abcdef' }],
    ['{ listen: ":9180", token: s3cr3t-s3cr3t-s3cr3t }', { listen: { host: undefined, port: 9180 }, token: 's3cr3t-s3cr3t-s3cr3t' }],
    ['{ listen: "localhost:9180" }', { listen: { host: 'localhost', port: 9180 }, token: undefined }],
  ])('reads the admin listener %s', (value, expected) => {
    expect(parseConfig('g.yaml', `admin: ${value}`).admin).toEqual(expected);
  });

  it.each([
    ['":9180"', 'the admin API on every interface needs a token'],
    ['10.0.0.5:9180', 'the admin API on 10.0.0.5 needs a token'],
    ['{ listen: "0.0.0.0:9180" }', 'the admin API on 0.0.0.0 needs a token'],
  ])('refuses the admin listener %s beyond loopback without a token', (value, reason) => {
    expect(() => parseConfig('g.yaml', `admin: ${value}`)).toThrow(`g.yaml: admin (line 1): ${reason}`);
  });

  it.each([
    ['{ token: short }', 'admin.token (line 1): must be at least 16 characters'],
    ['{ token: "has spaces in the token" }', 'admin.token (line 1): must be printable ASCII without spaces'],
    ['{ listen: 127.0.0.1:1, tokn: x }', 'admin.tokn (line 1): unknown field "tokn" (did you mean "token"?)'],
  ])('refuses the admin settings %s', (value, reason) => {
    expect(() => parseConfig('g.yaml', `admin: ${value}`)).toThrow(reason);
  });
});
