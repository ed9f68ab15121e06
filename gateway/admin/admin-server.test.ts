import { createServer, type Server } from 'node:http';
import pino, { type Logger } from 'pino';
import type { AddressInfo } from 'node:net';
import { BehaviorSubject, Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStream } from '../../test/harness/sse-client.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { parseConfig } from '../config/index.ts';
import { startGateway, type Gateway } from '../pipeline.ts';
import type { AdminSources, Readiness } from './admin-sources.ts';
import { AdminServer } from './admin-server.ts';
import { AdminEvents } from './events.ts';
import type { ConfigChange } from './event-types.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { ServiceView } from './service-view.ts';

const TOKEN = 'admin-server-test-token';

/** The real pipeline in this process, with a static service in front of a real backend. */
describe('the admin listener of a running gateway', () => {
  let backend: Server;
  let gateway: Gateway;
  let admin: string;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const configText = (port: number, extra = '') => `
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: ${TOKEN} }
accessLog: false
services:
  echo: { instances: ["127.0.0.1:${port}"] }
routes:
  - { name: echo, path: /echo, service: echo }
${extra}`;

  beforeAll(async () => {
    backend = createServer((_request, response) => response.end('ok'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as AddressInfo).port;
    gateway = await startGateway(parseConfig('g.yaml', configText(port)));
    admin = `http://127.0.0.1:${gateway.adminPort}`;
  });

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
  });

  it('answers 401 with a JSON error and a Bearer challenge without the token or with a wrong one', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: `Basic ${TOKEN}` }] as Record<string, string>[]) {
      const response = await fetch(`${admin}/api/services`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="switchboard-admin"');
      expect(await response.json()).toMatchObject({ error: 'unauthorized', status: 401 });
    }
    expect((await fetch(`${admin}/metrics`)).status).toBe(401);
    expect((await fetch(`${admin}/no/such/path`)).status).toBe(401);
  });

  it('takes the token from the query on the event stream only', async () => {
    expect((await fetch(`${admin}/api/services?token=${TOKEN}`)).status).toBe(401);
    const stream = await openEventStream(`${admin}/api/events?token=${TOKEN}`);
    expect(stream.status).toBe(200);
    stream.close();
  });

  it('answers 404 for an unknown path and 405 for any method but GET and HEAD, both as JSON', async () => {
    const missing = await fetch(`${admin}/api/nothing`, { headers: auth });
    expect([missing.status, await missing.json()]).toEqual([404, { error: 'not-found', status: 404, message: 'no admin endpoint at /api/nothing' }]);
    // Without a config store there are no peers to list (the dashboard hides its peers panel on this 404).
    expect((await fetch(`${admin}/api/peers`, { headers: auth })).status).toBe(404);
    for (const method of ['POST', 'DELETE', 'OPTIONS']) {
      const response = await fetch(`${admin}/api/services`, { method, headers: auth });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
    }
  });

  it('answers HEAD as GET without the body, on the views, metrics, the dashboard and the event stream', async () => {
    for (const path of ['/api/services', '/api/config', '/metrics', '/', '/api/events']) {
      const get = await fetch(`${admin}${path}`, { headers: auth });
      const head = await fetch(`${admin}${path}`, { method: 'HEAD', headers: auth });
      expect([head.status, head.headers.get('content-type'), head.headers.get('cache-control')], path).toEqual([200, get.headers.get('content-type'), get.headers.get('cache-control')]);
      expect(await head.text(), path).toBe('');
      await get.body?.cancel();
    }
    expect((await fetch(`${admin}/api/services`, { method: 'HEAD' })).status).toBe(401);
  });

  it('answers /ready without the token: 200 while the entry points listen', async () => {
    const response = await fetch(`${admin}/ready`);
    expect([response.status, await response.json()]).toEqual([200, { ready: true, reason: null }]);
    expect((await fetch(`${admin}/ready`, { method: 'HEAD' })).status).toBe(200);
  });

  it('serves the dashboard without the token, under a strict content security policy', async () => {
    for (const path of ['/', '/index.html', '/dashboard.css', '/dashboard.js', '/dashboard-format.js', '/dashboard-events.js', '/dashboard-token.js', '/dashboard-cards.js', '/dashboard-traffic.js', '/dashboard-breakers.js', '/dashboard-breakers.css', '/dashboard-tcp.js', '/dashboard-peers.js']) {
      const response = await fetch(`${admin}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    }
    expect(await (await fetch(`${admin}/`)).text()).toContain('<script type="module" src="dashboard.js">');
  });

  it('lists the service with its instance and the requests it took', async () => {
    for (let index = 0; index < 3; index += 1) expect((await fetch(`http://127.0.0.1:${gateway.port}/echo`)).status).toBe(200);
    const { services } = (await (await fetch(`${admin}/api/services`, { headers: auth })).json()) as { services: ServiceView[] };
    expect(services).toMatchObject([
      { name: 'echo', declared: true, balancer: 'weighted-round-robin', providers: [{ name: 'static', state: 'connected', instances: 1 }], instances: [{ source: 'static', requests: 3, errors: 0, inFlight: 0, routable: true, health: { state: 'healthy', reason: 'registered' } }] },
    ]);
  });

  it('shows the configuration with the token redacted, the routes and the registries', async () => {
    const config = await (await fetch(`${admin}/api/config`, { headers: auth })).text();
    expect(config).not.toContain(TOKEN);
    expect(JSON.parse(config).admin.token).toBe('[redacted]');
    expect(await (await fetch(`${admin}/api/routes`, { headers: auth })).json()).toMatchObject({ routes: [{ order: 0, name: 'echo', service: 'echo' }] });
    expect(await (await fetch(`${admin}/api/registries`, { headers: auth })).json()).toMatchObject({ registries: [{ name: 'static', kind: 'static', url: null, state: 'connected', services: 1 }] });
  });

  it('streams configuration changes, applied and refused, and counts them', async () => {
    // The counters are the process's: other test files in this worker (isolate: false) may have counted reloads before.
    const reloads = async (result: string) => Number(new RegExp(`^switchboard_config_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(await (await fetch(`${admin}/metrics`, { headers: auth })).text())?.[1] ?? 0);
    const before = { applied: await reloads('applied'), refused: await reloads('refused') };
    const stream = await openEventStream(`${admin}/api/events`, auth);
    const port = (backend.address() as AddressInfo).port;
    gateway.apply(parseConfig('g.yaml', configText(port, '  - { name: other, path: /other, service: echo }')));
    gateway.refuse(new Error('g.yaml: listn (line 1): unknown field "listn"'));
    await waitFor(() => stream.messages.length >= 2, { message: 'two config events' });
    expect(stream.messages.map((message) => [message.event, JSON.parse(message.data).data])).toEqual([
      ['config-applied', { routes: 2, services: 1, restartRequired: [] }],
      ['config-refused', { reason: 'g.yaml: listn (line 1): unknown field "listn"' }],
    ]);
    stream.close();
    expect({ applied: await reloads('applied'), refused: await reloads('refused') }).toEqual({ applied: before.applied + 1, refused: before.refused + 1 });
  });
});

describe('an admin listener without a token', () => {
  it('answers only requests addressed to a loopback host', async () => {
    const gateway = await startGateway(parseConfig('g.yaml', 'listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\naccessLog: false\n'));
    try {
      const url = `http://127.0.0.1:${gateway.adminPort}/api/services`;
      expect((await fetch(url)).status).toBe(200);
      const { request } = await import('undici');
      const rebound = await request(url, { headers: { host: `attacker.example:${gateway.adminPort}` } });
      expect([rebound.statusCode, await rebound.body.json()]).toMatchObject([403, { error: 'forbidden', status: 403 }]);
      // Readiness tells nothing worth rebinding for, and a probe names the address it was given (a
      // health check on the machine's own address, a sidecar), so `/ready` answers whatever the Host.
      const probe = await request(`http://127.0.0.1:${gateway.adminPort}/ready`, { headers: { host: `10.1.2.3:${gateway.adminPort}` } });
      expect([probe.statusCode, await probe.body.json()]).toEqual([200, { ready: true, reason: null }]);
    } finally {
      await gateway.close();
    }
  });
});

describe('an admin listener and a client that trickles its request head', () => {
  it('answers 408 and closes the connection once the head is not complete within the headers timeout', async () => {
    const { connect } = await import('node:net');
    const server = new AdminServer({} as AdminSources, {} as AdminEvents, new Map(), { listen: { host: '127.0.0.1', port: 0 }, token: undefined, headersTimeoutMs: 300 });
    const port = await server.listen();
    try {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write('GET /api/services HTTP/1.1\r\nHost: localhost\r\n');
      // One header line every 100 ms keeps the connection busy but never finishes the head.
      const trickle = setInterval(() => socket.write('x-trickle: 1\r\n'), 100);
      await waitFor(() => socket.destroyed || received !== '', { timeoutMs: 5_000, message: 'the server to give up on the head' });
      clearInterval(trickle);
      await closed;
      expect(received).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await server.close();
    }
  });
});

describe('an admin listener with many event streams open', () => {
  it('answers 503 with a reason beyond the bound, and a stream that closes frees its slot', async () => {
    const events = new AdminEvents({ health$: new Subject<HealthSnapshot>(), statuses$: new BehaviorSubject<readonly ProviderStatus[]>([]), config$: new Subject<ConfigChange>(), describe: () => [] });
    const server = new AdminServer({} as AdminSources, events, new Map(), { listen: { host: '127.0.0.1', port: 0 }, token: undefined, maxEventStreams: 3 });
    const url = `http://127.0.0.1:${await server.listen()}/api/events`;
    const streams = [];
    try {
      for (let index = 0; index < 3; index += 1) streams.push(await openEventStream(url));
      expect(streams.map((stream) => stream.status)).toEqual([200, 200, 200]);
      const refused = await fetch(url);
      expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '5']);
      expect(await refused.json()).toMatchObject({ error: 'too-many-streams', status: 503, message: expect.stringContaining('3 event streams are open') });
      // HEAD opens no stream, so it is answered even at the bound.
      expect((await fetch(url, { method: 'HEAD' })).status).toBe(200);

      streams.shift()!.close();
      let again = await openEventStream(url);
      await waitFor(
        async () => {
          if (again.status === 200) return true;
          again = await openEventStream(url);
          return again.status === 200;
        },
        { message: 'a slot freed by the closed stream' },
      );
      streams.push(again);
      const full = await fetch(url);
      expect(full.status).toBe(503);
      await full.body?.cancel();
    } finally {
      for (const stream of streams) stream.close();
      await server.close();
      events.close();
    }
  });
});

describe('the admin listener of a gateway whose configuration holds secrets', () => {
  it('shows none of them in any view: configuration, routes, breakers, explain, services, stats, metrics', async () => {
    const backend = createServer((_request, response) => response.end('ok'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as AddressInfo).port;
    // Each secret holds "secret-"; the consumer's key digest is of the key "secret-key".
    const digest = (await import('node:crypto')).createHash('sha256').update('secret-key').digest('hex');
    const gateway = await startGateway(
      parseConfig(
        'g.yaml',
        `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
accessLog: false
services:
  echo: { instances: ["127.0.0.1:${port}"] }
consumers:
  alice: { keys: ["sha256:${digest}"] }
middlewares:
  api-key: { keyAuth: { header: X-Key } }
  sso: { forwardAuth: { address: "http://gw:fa-secret-1@127.0.0.1:${port}/check" } }
routes:
  - name: guarded
    path: /guarded
    service: echo
    headers: { x-api-key: route-secret-2 }
    requestHeaders: { set: { authorization: "Bearer route-secret-3" } }
    circuitBreaker: { fallback: { status: 503, headers: { x-auth-token: breaker-secret-4 } } }
    middlewares: [api-key]
`,
      ),
    );
    try {
      const proxied = await fetch(`http://127.0.0.1:${gateway.port}/guarded`, { headers: { 'x-api-key': 'route-secret-2', 'x-key': 'secret-key' } });
      expect(proxied.status).toBe(200);
      const admin = `http://127.0.0.1:${gateway.adminPort}`;
      const paths = ['/api/config', '/api/routes', '/api/breakers', '/api/explain?path=/guarded', '/api/services', '/api/registries', '/api/stats', '/api/tcp', '/metrics'];
      for (const path of paths) {
        const response = await fetch(`${admin}${path}`);
        const text = await response.text();
        expect(response.status, path).toBe(200);
        expect(text, path).not.toMatch(/secret-|[0-9a-f]{64}/);
      }
      const explain = (await (await fetch(`${admin}/api/explain?path=/guarded`)).json()) as { nearMisses: { reasons: string[] }[] };
      expect(explain.nearMisses[0]!.reasons).toEqual(['header x-api-key does not hold "[redacted]"']);
      const breakers = (await (await fetch(`${admin}/api/breakers`)).json()) as { workers: { breakers: { settings: { fallback: { headers: unknown } } }[] }[] };
      expect(breakers.workers[0]!.breakers[0]!.settings.fallback.headers).toEqual({ 'x-auth-token': '[redacted]' });
    } finally {
      await gateway.close();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });
});

describe('/ready of the admin listener', () => {
  it('answers 503 with the reason while the gateway does not take connections, and 200 again once it does', async () => {
    let readiness: Readiness = { ready: false, reason: 'no worker is listening (2 down or restarting)' };
    const server = new AdminServer({ ready: () => readiness } as AdminSources, {} as AdminEvents, new Map(), { listen: { host: '127.0.0.1', port: 0 }, token: 'ready-test-token' });
    const url = `http://127.0.0.1:${await server.listen()}/ready`;
    try {
      const down = await fetch(url);
      expect([down.status, await down.json()]).toEqual([503, readiness]);
      readiness = { ready: true, reason: null };
      expect((await fetch(url)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('says not ready as soon as a gateway starts to drain, while requests still finish', async () => {
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let arrived = false;
    const backend = createServer((_request, response) => {
      arrived = true;
      void held.then(() => response.end('ok'));
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as AddressInfo).port;
    const gateway = await startGateway(parseConfig('g.yaml', `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\naccessLog: false\nservices: { echo: { instances: ["127.0.0.1:${port}"] } }\nroutes: [{ path: /, service: echo }]\n`));
    const ready = `http://127.0.0.1:${gateway.adminPort}/ready`;
    try {
      expect((await fetch(ready)).status).toBe(200);
      const inFlight = fetch(`http://127.0.0.1:${gateway.port}/slow`);
      await waitFor(() => arrived, { message: 'the request to reach the backend' });
      const closed = gateway.close();
      const answer = await waitFor(async () => {
        const response = await fetch(ready);
        return response.status === 503 && ((await response.json()) as Readiness);
      }, { message: '/ready to say 503 during the drain' });
      expect(answer).toEqual({ ready: false, reason: 'draining: the gateway is stopping' });
      release();
      expect((await inFlight).status).toBe(200);
      await closed;
    } finally {
      release();
      await gateway.close();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });
});

describe('an admin listener that fails to answer', () => {
  it('logs the path without its query, where /api/events takes the admin token', async () => {
    const lines: { path?: string }[] = [];
    const server = new AdminServer({} as AdminSources, {} as AdminEvents, new Map(), { listen: { host: '127.0.0.1', port: 0 }, token: 'logged-token-secret' });
    (server as unknown as { log: Logger }).log = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line) as { path?: string }) });
    const port = await server.listen();
    try {
      // Events without a feed: the stream fails once it has started, and the failure is logged.
      await fetch(`http://127.0.0.1:${port}/api/events?token=logged-token-secret`).then((response) => response.text()).catch(() => undefined);
      await waitFor(() => lines.length > 0, { message: 'the failure to be logged' });
      expect(lines[0]!.path).toBe('/api/events');
      expect(JSON.stringify(lines)).not.toContain('logged-token-secret');
    } finally {
      await server.close();
    }
  });
});
