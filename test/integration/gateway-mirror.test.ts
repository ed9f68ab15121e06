import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { refusingPort, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** What a backend saw of one request. */
interface Seen {
  method: string;
  url: string;
  host: string | undefined;
  id: string | undefined;
  body: string;
  /** The request's body arrived whole. */
  complete: boolean;
  /** The exchange is over (answered, or the gateway let go of it). */
  closed: boolean;
}

interface Backend {
  server: Server;
  port: number;
  seen: Seen[];
}

/**
 * A real HTTP backend on port 0 that records every request; `answer` decides per request (the
 * default answers 200 with `name` once the body is in; `hang` never answers).
 */
async function startBackend(name: string, mode: 'answer' | 'hang' = 'answer'): Promise<Backend> {
  const seen: Seen[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const entry: Seen = { method: request.method ?? '', url: request.url ?? '', host: request.headers.host, id: request.headers['x-id'] as string | undefined, body: '', complete: false, closed: false };
    seen.push(entry);
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (entry.body += chunk));
    response.on('close', () => (entry.closed = true));
    request.on('end', () => {
      entry.complete = true;
      if (mode === 'answer') response.end(name);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

async function stopBackend(backend: Backend | undefined): Promise<void> {
  if (!backend) return;
  backend.server.closeAllConnections();
  await new Promise((resolve) => backend.server.close(resolve));
}

/** Sends one request on a fresh connection; `chunked` sends the body without a length. */
function send(port: number, method: string, path: string, id: string, body?: string, chunked = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-id': id, host: 'shop.example.com' };
    if (body !== undefined) headers[chunked ? 'transfer-encoding' : 'content-length'] = chunked ? 'chunked' : String(Buffer.byteLength(body));
    const request = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

describe('route mirror', () => {
  let primary: Backend;
  let shadow: Backend;
  let hanging: Backend;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let closedPort: number;

  const metric = async (name: string, labels: Record<string, string>) => sampleValue(await admin.metrics(), name, labels) ?? 0;
  const shadowSaw = (id: string) => shadow.seen.filter((entry) => entry.id === id);

  beforeAll(async () => {
    [primary, shadow, hanging] = await Promise.all([startBackend('primary'), startBackend('shadow'), startBackend('hanging', 'hang')]);
    // Nothing listens there: every connect to it is refused.
    closedPort = await refusingPort();
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
listen: "127.0.0.1:{{port}}"
services:
  shop:
    instances: [127.0.0.1:${primary.port}]
    panicThreshold: 0
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 120s }
  shadow:
    instances: [127.0.0.1:${shadow.port}]
  hanging:
    instances: [127.0.0.1:${hanging.port}]
  down:
    instances: [{ id: down-1, host: 127.0.0.1, port: ${closedPort} }]
    healthCheck: false
    panicThreshold: 0
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 120s }
middlewares:
  memory: { cache: {} }
routes:
  - { name: copied, path: /copied, stripPrefix: true, service: shop, mirror: { service: shadow, maxBodySize: 16 } }
  - { name: cached, path: /cached, stripPrefix: true, service: shop, middlewares: [memory], mirror: { service: shadow } }
  - { name: never, path: /never, service: shop, mirror: { service: shadow, percent: 0 } }
  - { name: bodiless, path: /bodiless, service: shop, mirror: { service: shadow, body: false } }
  - { name: held, path: /held, service: shop, mirror: { service: hanging, timeout: 60s, maxInFlight: 2 } }
  - { name: timed, path: /timed, service: shop, mirror: { service: hanging, timeout: 300ms } }
  - { name: refused, path: /refused, service: shop, mirror: { service: down } }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([stopBackend(primary), stopBackend(shadow), stopBackend(hanging)]);
  });

  it('answers the client from the primary and sends the mirror the same method, path after rewrites and body, with a -shadow Host', async () => {
    const answer = await send(gateway.port, 'POST', '/copied/orders?x=1', 'copy-1', '{"n":1}');
    expect(answer, await logOf(gateway.process)).toEqual({ status: 200, body: 'primary' });
    const [copy] = await waitFor(() => (shadowSaw('copy-1').length > 0 ? shadowSaw('copy-1') : undefined), { message: 'the mirror to see the copy' });
    expect(copy).toMatchObject({ method: 'POST', url: '/orders?x=1', host: 'shop.example.com-shadow', body: '{"n":1}', complete: true });
    expect(primary.seen.find((entry) => entry.id === 'copy-1')).toMatchObject({ method: 'POST', url: '/orders?x=1', host: 'shop.example.com', body: '{"n":1}' });
    await waitFor(async () => (await metric('switchboard_mirror_requests_total', { route: 'copied', result: 'answered' })) >= 1, { message: 'the copy to be counted' });
  });

  it('mirrors a chunked body within maxBodySize whole, and a request without a body', async () => {
    expect((await send(gateway.port, 'PUT', '/copied/chunked', 'copy-chunked', 'sixteen bytes!!!', true)).status).toBe(200);
    expect((await send(gateway.port, 'GET', '/copied/get', 'copy-get')).status).toBe(200);
    await waitFor(() => shadowSaw('copy-chunked').length === 1 && shadowSaw('copy-get').length === 1, { message: 'the mirror to see both copies' });
    expect(shadowSaw('copy-chunked')[0]).toMatchObject({ method: 'PUT', url: '/chunked', body: 'sixteen bytes!!!', complete: true });
    expect(shadowSaw('copy-get')[0]).toMatchObject({ method: 'GET', url: '/get', body: '' });
  });

  it('does not mirror a body over maxBodySize, announced or chunked, and counts it; the primary gets it whole', async () => {
    const before = await metric('switchboard_mirror_dropped_total', { route: 'copied', reason: 'body-too-large' });
    const big = 'x'.repeat(17);
    expect(await send(gateway.port, 'POST', '/copied/big', 'big-length', big)).toEqual({ status: 200, body: 'primary' });
    expect(await send(gateway.port, 'POST', '/copied/big', 'big-chunked', big, true)).toEqual({ status: 200, body: 'primary' });
    expect(primary.seen.filter((entry) => entry.id?.startsWith('big-')).map((entry) => entry.body)).toEqual([big, big]);
    // Both drops are counted by the time the primary has read the body: no copy can follow them.
    expect(await metric('switchboard_mirror_dropped_total', { route: 'copied', reason: 'body-too-large' })).toBe(before + 2);
    expect(shadow.seen.filter((entry) => entry.id?.startsWith('big-'))).toEqual([]);
  });

  it('mirrors a HEAD the cache sends upstream as a GET (convertHead) as the HEAD the client sent', async () => {
    expect((await send(gateway.port, 'HEAD', '/cached/probed', 'copy-head')).status).toBe(200);
    expect(primary.seen.find((entry) => entry.id === 'copy-head')).toMatchObject({ method: 'GET', url: '/probed' });
    const [copy] = await waitFor(() => (shadowSaw('copy-head').length > 0 ? shadowSaw('copy-head') : undefined), { message: 'the mirror to see the copy' });
    expect(copy).toMatchObject({ method: 'HEAD', url: '/probed' });
  });

  it('sends no copy at percent 0, and a copy without its body at body: false', async () => {
    expect((await send(gateway.port, 'POST', '/never', 'never', 'data')).status).toBe(200);
    expect((await send(gateway.port, 'POST', '/bodiless', 'bodiless', 'data')).status).toBe(200);
    // The copy of the later request is in: one of the earlier one would have gone out first, on its own connection.
    await waitFor(() => shadowSaw('bodiless').some((entry) => entry.complete), { message: 'the mirror to see the bodiless copy' });
    expect(shadowSaw('bodiless')[0]).toMatchObject({ method: 'POST', url: '/bodiless', body: '' });
    expect(shadowSaw('never')).toEqual([]);
    expect(primary.seen.find((entry) => entry.id === 'never')).toMatchObject({ body: 'data' });
    const families = await admin.metrics();
    expect(sampleValue(families, 'switchboard_mirror_requests_total', { route: 'never', result: 'answered' })).toBeUndefined();
  });

  it('answers clients while a hanging mirror holds their copies, keeps at most maxInFlight of them, and drops the rest', async () => {
    for (let index = 0; index < 5; index += 1) {
      expect(await send(gateway.port, 'POST', '/held', `held-${index}`, 'payload')).toEqual({ status: 200, body: 'primary' });
    }
    const held = () => hanging.seen.filter((entry) => entry.id?.startsWith('held-'));
    await waitFor(() => held().length === 2, { message: 'the hanging mirror to hold two copies' });
    expect(held().every((entry) => entry.complete && !entry.closed)).toBe(true);
    expect(await metric('switchboard_mirror_dropped_total', { route: 'held', reason: 'in-flight-limit' })).toBe(3);
  });

  it('ends a copy its mirror never answers at the mirror\'s timeout, and counts it failed', async () => {
    expect(await send(gateway.port, 'GET', '/timed', 'timed')).toEqual({ status: 200, body: 'primary' });
    const copy = await waitFor(() => hanging.seen.find((entry) => entry.id === 'timed'), { message: 'the hanging mirror to see the copy' });
    // The backend never answers: only the gateway's timeout closes the exchange.
    await waitFor(() => copy.closed, { message: 'the gateway to give up the copy at its timeout' });
    await waitFor(async () => (await metric('switchboard_mirror_requests_total', { route: 'timed', result: 'failed' })) === 1, { message: 'the timed-out copy to be counted failed' });
  });

  it('counts a mirror that is down against the mirror service only, never against the primary', async () => {
    for (let index = 0; index < 4; index += 1) {
      expect(await send(gateway.port, 'POST', '/refused', `refused-${index}`, 'data')).toEqual({ status: 200, body: 'primary' });
    }
    await waitFor(async () => (await metric('switchboard_mirror_requests_total', { route: 'refused', result: 'failed' })) >= 2, { message: 'the refused copies to be counted' });
    // Two refused connects eject the mirror's instance (consecutiveErrors: 2), as any request of that service's would.
    await waitFor(async () => typeof (await admin.instance('down', 'down-1'))?.health.ejectedUntil === 'string', { message: 'the down mirror instance to be ejected' });
    const shop = (await admin.services()).find((service) => service.name === 'shop')!;
    expect(shop.instances.map((instance) => instance.health.ejectedUntil)).toEqual([null]);
    expect(await send(gateway.port, 'GET', '/refused/after', 'refused-after')).toEqual({ status: 200, body: 'primary' });
  });
});
