import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { startGateway, type Gateway } from '../pipeline.ts';
import type { AdminSources } from './admin-sources.ts';
import { ServicesViewCache } from './service-view-cache.ts';
import { servicesView, type ServiceView } from './service-view.ts';
import type { JsonParts } from './sliced-work.ts';

/** Enough instances that building their view takes many times `ADMIN_SLICE_MS` on any machine. */
const SERVICES = 1_000;
const INSTANCES = 10;

function configText(port: number, balancer = 'round-robin'): string {
  const lines = ['listen: 127.0.0.1:0', 'admin: 127.0.0.1:0', 'accessLog: false', 'services:', `  echo: { balancer: ${balancer}, instances: ["127.0.0.1:${port}"] }`];
  for (let service = 0; service < SERVICES; service += 1) {
    const instances = Array.from({ length: INSTANCES }, (_, index) => `"10.9.${index}.${service % 250}:${20_000 + service}"`);
    lines.push(`  svc-${String(service).padStart(4, '0')}: { instances: [${instances.join(', ')}] }`);
  }
  lines.push('routes:', '  - { path: /echo, service: echo }', '');
  return lines.join('\n');
}

describe('/api/services with many services', () => {
  let backend: Server;
  let gateway: Gateway;
  let sources: AdminSources;
  let port: number;

  beforeAll(async () => {
    backend = createServer((_request, response) => response.end('ok'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    port = (backend.address() as AddressInfo).port;
    gateway = await startGateway(parseConfig('g.yaml', configText(port)));
    sources = { aggregator: gateway.aggregator, balancers: gateway.balancers, traffic: gateway.traffic, registries: [], config: () => gateway.config(), ready: () => ({ ready: true, reason: null }) };
  }, 60_000);

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
  });

  const cached = async (cache: ServicesViewCache) => Buffer.concat((await cache.parts([])).parts).toString();
  const echoOf = (text: string) => (JSON.parse(text) as { services: ServiceView[] }).services.find((service) => service.name === 'echo')!;

  it('answers what building every service afresh answers, after traffic and after a reload that changed a service', async () => {
    const cache = new ServicesViewCache(sources);
    expect(await cached(cache)).toBe(JSON.stringify(servicesView(sources, [])));
    for (let request = 0; request < 3; request += 1) await (await fetch(`http://127.0.0.1:${gateway.port}/echo`)).text();
    const afterTraffic = await cached(cache);
    expect(afterTraffic).toBe(JSON.stringify(servicesView(sources, [])));
    expect(echoOf(afterTraffic).instances[0]!.requests).toBe(3);
    gateway.apply(parseConfig('g.yaml', configText(port, 'least-connections')));
    const afterReload = await cached(cache);
    expect(afterReload).toBe(JSON.stringify(servicesView(sources, [])));
    expect(echoOf(afterReload).balancer).toBe('least-connections');
  });

  it('gives the ETag of the body it would answer, the same while nothing changed and a new one after traffic or a reload,', async () => {
    const cache = new ServicesViewCache(sources);
    const first = await cache.parts([]);
    expect(first.etag).toMatch(/^"[\w-]+"$/);
    expect((await cache.parts([])).etag).toBe(first.etag);
    expect((await cache.parts([])).etag).toBe(first.etag);
    // Another cache (another process) never gives the same tag, though its version counts alike.
    expect((await new ServicesViewCache(sources).parts([])).etag).not.toBe(first.etag);
    await (await fetch(`http://127.0.0.1:${gateway.port}/echo`)).text();
    const afterTraffic = (await cache.parts([])).etag;
    expect(afterTraffic).not.toBe(first.etag);
    const body = await cache.parts([]);
    expect([body.etag, echoOf(Buffer.concat(body.parts).toString()).balancer]).toEqual([afterTraffic, 'least-connections']);
    gateway.apply(parseConfig('g.yaml', configText(port, 'round-robin')));
    const afterReload = await cache.parts([]);
    expect(afterReload.etag).not.toBe(afterTraffic);
    expect(echoOf(Buffer.concat(afterReload.parts).toString()).balancer).toBe('round-robin');
  });

  it('pairs each body with its own version when walks overlap', async () => {
    const cache = new ServicesViewCache(sources);
    await cache.parts([]);
    const walks = Promise.all([cache.parts([]), cache.parts([]), cache.parts([])]);
    await (await fetch(`http://127.0.0.1:${gateway.port}/echo`)).text();
    const [before, , after] = await walks;
    const requestsOf = (body: JsonParts) => echoOf(Buffer.concat(body.parts).toString()).instances[0]!.requests;
    // Same tag, same body: a client that cached one body under a tag is never told 304 for another.
    // (Another tag may come with the same count: the request in flight changes the view before it is counted.)
    if (before.etag === after.etag) expect(Buffer.concat(after.parts).toString()).toBe(Buffer.concat(before.parts).toString());
    else expect(requestsOf(after)).toBeGreaterThanOrEqual(requestsOf(before));
  });

  it('lets other callbacks run while it builds the answer, rather than blocking the event loop until it is written', async () => {
    // Turns of the event loop, counted by a callback that schedules itself again (as proxied traffic would get its turn).
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    let turnsAtRequest = -1;
    let turnsAtHead = -1;
    const onRequest = (message: unknown) => {
      const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
      if (request.url !== '/api/services') return;
      turnsAtRequest = turns;
      const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => ServerResponse;
      response.writeHead = ((...args: unknown[]) => {
        turnsAtHead = turns;
        return writeHead(...args);
      }) as typeof response.writeHead;
    };
    subscribe('http.server.request.start', onRequest);
    try {
      const response = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/services`);
      expect((await response.json() as { services: unknown[] }).services).toHaveLength(SERVICES + 1);
    } finally {
      unsubscribe('http.server.request.start', onRequest);
      ticking = false;
    }
    expect(turnsAtRequest).toBeGreaterThanOrEqual(0);
    // Built in one go, the answer's head is written in the same turn the request arrived in.
    expect(turnsAtHead).toBeGreaterThan(turnsAtRequest);
  });
});
