import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { configView, REDACTED, routesView } from './config-view.ts';

describe('configView', () => {
  it('lists an entry point a reload removed, which listens until a restart, last and marked removed', () => {
    const started = parseConfig('g.yaml', 'entryPoints:\n  web: { listen: ":8080" }\n  old: { listen: ":8081" }\n');
    const next = parseConfig('g.yaml', 'entryPoints:\n  web: { listen: ":8080" }\n');
    const view = configView(next, undefined, started) as { restartRequired: string[]; entryPoints: { name: string; listen: unknown; restartRequired: boolean; removed?: boolean }[] };
    expect(view.restartRequired).toEqual(['entryPoints']);
    expect(view.entryPoints.map(({ name, restartRequired, removed }) => ({ name, restartRequired, removed }))).toEqual([
      { name: 'web', restartRequired: false, removed: undefined },
      { name: 'old', restartRequired: true, removed: true },
    ]);
    expect(view.entryPoints[1]!.listen).toEqual({ host: null, port: 8081 });
    expect((configView(started) as { entryPoints: unknown[] }).entryPoints).toHaveLength(2);
  });

  it('shows the resolved configuration with the admin token redacted and services as an object', () => {
    const config = parseConfig('g.yaml', 'admin: { listen: "0.0.0.0:9180", token: super-secret-admin-token }\nservices: { user: {} }\n');
    const view = configView(config) as { admin: unknown; services: Record<string, { balancer: unknown }>; listen: unknown };
    expect(view.admin).toEqual({ listen: { host: '0.0.0.0', port: 9180 }, token: REDACTED });
    expect(JSON.stringify(view)).not.toContain('super-secret-admin-token');
    expect(view.services.user?.balancer).toEqual({ algorithm: 'weighted-round-robin' });
    expect(view.listen).toEqual({ host: null, port: 8080 });
  });

  it('redacts the Redis password, also in its URL, shows it once (a policy: redis limit carries no copy), and redacts the tracing headers and URL password', () => {
    const config = parseConfig(
      'g.yaml',
      `
redis: { url: "redis://:url-secret-1@127.0.0.1:6379/0", password: redis-secret-2 }
tracing: { endpoint: "http://otel:endpoint-secret-3@collector:4318/v1/traces", headers: { x-honeycomb-team: header-secret-4 } }
middlewares: { shared: { rateLimit: { average: 10, policy: redis } } }
`,
    );
    const view = configView(config) as {
      redis: { target: { url: string }; password: string };
      tracing: { endpoint: string; headers: Record<string, string> };
      middlewares: { shared: { settings: Record<string, unknown> } };
    };
    expect(JSON.stringify(view)).not.toMatch(/secret-[1-4]/);
    expect(view.redis).toMatchObject({ target: { url: `redis://:${REDACTED}@127.0.0.1:6379/0` }, password: REDACTED });
    expect(view.middlewares.shared.settings).toMatchObject({ policy: 'redis' });
    expect(view.middlewares.shared.settings).not.toHaveProperty('redis');
    expect(view.tracing).toMatchObject({ endpoint: `http://otel:${REDACTED}@collector:4318/v1/traces`, headers: { 'x-honeycomb-team': REDACTED } });
  });

  it('redacts the values of headers that carry credentials wherever headers are set or matched, and keeps the others', () => {
    const config = parseConfig(
      'g.yaml',
      `
middlewares:
  upstream-auth:
    headers:
      request: { set: { Authorization: "Bearer mw-secret-1", x-api-key: mw-secret-2, x-tenant: acme, Cookie: "s=mw-secret-3" }, remove: [x-debug] }
      response: { set: { Set-Cookie: "id=mw-secret-4", x-frame-options: DENY } }
routes:
  - { name: a, path: /a, service: a, headers: { x-internal-token: route-secret-5, x-env: eu }, requestHeaders: { set: { authorization: "Basic route-secret-6", x-client-secret: route-secret-7, x-session-id: route-secret-8 } } }
`,
    );
    const view = configView(config) as { middlewares: Record<string, { settings: { request: { set: Record<string, string>; remove: string[] }; response: { set: Record<string, string> } } }>; routes: { headers: Record<string, string>; requestHeaders: { set: Record<string, string> } }[] };
    expect(JSON.stringify(view)).not.toMatch(/secret-\d/);
    expect(view.middlewares['upstream-auth']!.settings.request).toEqual({ set: { authorization: REDACTED, 'x-api-key': REDACTED, 'x-tenant': 'acme', cookie: REDACTED }, remove: ['x-debug'] });
    expect(view.middlewares['upstream-auth']!.settings.response.set).toEqual({ 'set-cookie': REDACTED, 'x-frame-options': 'DENY' });
    expect(view.routes[0]!.headers).toEqual({ 'x-internal-token': REDACTED, 'x-env': 'eu' });
    expect(view.routes[0]!.requestHeaders.set).toEqual({ authorization: REDACTED, 'x-client-secret': REDACTED, 'x-session-id': REDACTED });
    expect(JSON.stringify(routesView(config))).not.toMatch(/secret-\d/);
  });

  it('redacts a URL password that holds an @ of its own, and a password query parameter', () => {
    for (const url of ['redis://default:p@ss-secret-5@127.0.0.1:6379/0', 'redis://127.0.0.1:6379/0?password=query-secret-6&db=1']) {
      const view = configView(parseConfig('g.yaml', `redis: { url: "${url}" }\n`));
      expect(JSON.stringify(view)).not.toMatch(/secret-[56]/);
    }
    const view = configView(parseConfig('g.yaml', 'redis: { url: "redis://default:p@ss-secret-5@127.0.0.1:6379/0?db=1&password=x" }\n')) as { redis: { target: { url: string } } };
    expect(view.redis.target.url).toBe(`redis://default:${REDACTED}@127.0.0.1:6379/0?db=1&password=${REDACTED}`);
  });

  it('leaves a Redis without a password and URLs without credentials as they are', () => {
    const view = configView(parseConfig('g.yaml', 'redis: { url: "redis://127.0.0.1:6379/0" }\n')) as { redis: { target: { url: string }; password: unknown } };
    expect(view.redis).toMatchObject({ target: { url: 'redis://127.0.0.1:6379/0' }, password: null });
  });

  it('shows a disabled admin listener as false and a missing token as null', () => {
    expect((configView(parseConfig('g.yaml', 'admin: false')) as { admin: unknown }).admin).toBe(false);
    expect((configView(parseConfig('g.yaml', '')) as { admin: { token: unknown } }).admin.token).toBeNull();
  });
});

describe('configView against what the listeners run from', () => {
  const STARTED = 'entryPoints:\n  web: { listen: "127.0.0.1:8080" }\n  admin-api: { listen: "127.0.0.1:8443" }\n';
  type View = { restartRequired: string[]; entryPoints: { name: string; restartRequired: boolean }[] };
  const viewOf = (running: string, inForce: string) => configView(parseConfig('g.yaml', inForce), undefined, parseConfig('g.yaml', running)) as View;

  it.each([
    { change: 'none', inForce: STARTED, keys: [], waiting: [] },
    { change: 'an entry point added', inForce: `${STARTED}  extra: { listen: "127.0.0.1:8081" }\n`, keys: ['entryPoints'], waiting: ['extra'] },
    { change: 'an entry point moved', inForce: STARTED.replace('8443', '9443'), keys: ['entryPoints'], waiting: ['admin-api'] },
    { change: 'the limits', inForce: `${STARTED}limits: { keepAliveTimeout: 5s }\n`, keys: ['limits'], waiting: [] },
  ])('after a reload that changed $change, names $keys as waiting for a restart and marks $waiting', ({ inForce, keys, waiting }) => {
    const view = viewOf(STARTED, inForce);
    expect(view.restartRequired).toEqual(keys);
    expect(view.entryPoints.filter((entryPoint) => entryPoint.restartRequired).map((entryPoint) => entryPoint.name)).toEqual(waiting);
  });
});

describe('routesView', () => {
  it('lists routes in matching order with their place', () => {
    const config = parseConfig('g.yaml', 'routes:\n  - { name: all, service: a }\n  - { name: users, path: /users, service: u, stripPrefix: true }\n');
    expect(routesView(config).routes).toMatchObject([
      { order: 0, name: 'users', path: '/users', service: 'u', stripPrefix: true, host: null },
      { order: 1, name: 'all', service: 'a' },
    ]);
  });
});
