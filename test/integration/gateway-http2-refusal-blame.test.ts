import { request } from 'node:http';
import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, type GatewayProcess } from '../harness/index.ts';

/** Fields node:http2 takes in a request head (its `maxHeaderListPairs`, pseudo-headers included): more are reset with ENHANCE_YOUR_CALM before any handler sees them. */
const FIELDS_TAKEN = 32;

/**
 * An h2c upstream, node:http2 with a `maxHeaderListPairs` of `FIELDS_TAKEN`, that answers 200 with
 * its `name`, except under `/malformed/`: a 204 with `content-length: 5`, which the gateway's
 * node:http2 (nghttp2) resets with PROTOCOL_ERROR before it sees the head (RFC 9113 §8.1.1). A
 * `broken` one takes node's default of fields and answers every request so.
 */
async function startInstance(name: string, broken = false): Promise<{ server: Http2Server; port: number }> {
  const server = createServer(broken ? {} : { maxHeaderListPairs: FIELDS_TAKEN });
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (broken || String(headers[':path']).startsWith('/malformed/')) return void stream.respond({ ':status': 204, 'content-length': '5' }, { endStream: true });
    stream.respond({ ':status': 200, 'content-length': Buffer.byteLength(name) });
    stream.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Twice the fields an instance takes, each small: an ordinary head by the gateway's measure (at most 128 fields, 16 KiB), which every instance refuses. */
function refusedHead(): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let index = 0; index < 2 * FIELDS_TAKEN; index += 1) headers[`x-field-${index}`] = 'v';
  return headers;
}

/** `GET path` over HTTP/1.1 with `headers`: the status and the body. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = request({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    sent.setTimeout(10_000, () => sent.destroy(new Error(`GET ${path} timed out`)));
    sent.on('error', reject);
    sent.end();
  });
}

// Every instance of a service runs the same code and limits, so a request one of them refuses for
// what it is, the next refuses too: retried, one client's request would blame each instance in
// turn, and get them ejected. It blames the first that refuses it; the others' refusals are counted
// apart (`repeated-refusal`), against no instance.
describe('a request every HTTP/2 instance refuses before answering', () => {
  const names = ['a', 'b', 'c'];
  let instances: Awaited<ReturnType<typeof startInstance>>[];
  let solo: Awaited<ReturnType<typeof startInstance>>;
  let lone: Awaited<ReturnType<typeof startInstance>>;
  let calm: Awaited<ReturnType<typeof startInstance>>;
  let broken: Awaited<ReturnType<typeof startInstance>>;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    [solo, lone, calm, broken, ...instances] = await Promise.all([startInstance('solo'), startInstance('lone'), startInstance('calm'), startInstance('broken', true), ...names.map((name) => startInstance(name))]);
    // Two failures in a row eject an instance, whichever share of the service that is.
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
services:
  trio:
    protocol: h2c
    instances:
${instances.map((instance, index) => `      - { id: ${names[index]}, host: 127.0.0.1, port: ${instance.port} }`).join('\n')}
    healthCheck: false
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 60s, maxEjectionPercent: 100 }
    retries: { attempts: 3 }
  solo:
    protocol: h2c
    instances: [{ id: s, host: 127.0.0.1, port: ${solo.port} }]
    healthCheck: false
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 60s }
    retries: { attempts: 3 }
  lone:
    protocol: h2c
    instances: [{ id: l, host: 127.0.0.1, port: ${lone.port} }]
    healthCheck: false
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 60s }
    retries: { attempts: 3 }
  duo:
    protocol: h2c
    instances: [{ id: calm, host: 127.0.0.1, port: ${calm.port} }, { id: broken, host: 127.0.0.1, port: ${broken.port} }]
    healthCheck: false
    retries: { attempts: 2 }
routes:
  - { path: /solo, service: solo }
  - { path: /duo, service: duo }
  - { path: /lone, service: lone }
  - { path: /, service: trio }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([solo, lone, calm, broken, ...(instances ?? [])].map((instance) => new Promise((resolve) => instance?.server.close(resolve))));
  });

  /** Runs `check`, with the gateway's log on a failure. */
  async function withLog(check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  }

  /** `switchboard_upstream_errors_total` of `service` by class. */
  async function upstreamErrors(service: string): Promise<Record<string, number>> {
    const samples = (await admin.metrics()).get('switchboard_upstream_errors_total')?.samples ?? [];
    return Object.fromEntries(samples.filter((sample) => sample.labels.service === service).map((sample) => [sample.labels.class, sample.value]));
  }

  /** The admin API's `errors` of each instance of `trio`, in `names` order. */
  async function trioErrors(): Promise<number[]> {
    return Promise.all(names.map(async (id) => (await admin.instance('trio', id))?.errors ?? -1));
  }

  /** Ordinary requests reach every instance of `trio`, each of them healthy. */
  async function expectAllServing(label: string): Promise<void> {
    const answers = new Set<string>();
    for (let sent = 0; sent < 6; sent += 1) {
      const { status, body } = await get(gateway.port, `/${label}/${sent}`);
      expect(status).toBe(200);
      answers.add(body);
    }
    expect([...answers].sort()).toEqual(names);
    for (const id of names) expect((await admin.instance('trio', id))?.health.state).toBe('healthy');
  }

  it('counts an ENHANCE_YOUR_CALM refusal of an ordinary head against the first of three instances that refuse it, and the two retries against none', async () => {
    await withLog(async () => {
      await expectAllServing('before');
      const { status, body } = await get(gateway.port, '/refused', refusedHead());
      expect([status, JSON.parse(body).error]).toEqual([502, 'upstream-refused']);
      expect(await accessLineOf(gateway.process, '/refused')).toMatchObject({ status: 502, errorClass: 'upstream-refused', attempts: 3 });
      expect((await trioErrors()).sort()).toEqual([0, 0, 1]);
      expect(await upstreamErrors('trio')).toMatchObject({ 'upstream-refused': 1, 'repeated-refusal': 2 });
      await expectAllServing('after-refused');
    });
  });

  it('counts a PROTOCOL_ERROR reset before the answer against the first of three instances that give it, and the two retries against none', async () => {
    await withLog(async () => {
      const errorsBefore = (await trioErrors()).reduce((sum, errors) => sum + errors, 0);
      const { status, body } = await get(gateway.port, '/malformed/page');
      expect([status, JSON.parse(body).error]).toEqual([502, 'http2-protocol-error']);
      expect(await accessLineOf(gateway.process, '/malformed/page')).toMatchObject({ status: 502, errorClass: 'http2-protocol-error', attempts: 3 });
      expect((await trioErrors()).reduce((sum, errors) => sum + errors, 0)).toBe(errorsBefore + 1);
      expect(await upstreamErrors('trio')).toMatchObject({ 'http2-protocol-error': 1, 'repeated-refusal': 4 });
      await expectAllServing('after-malformed');
    });
  });

  // With one instance the retries go to it again (nowhere else to send them): one refused request
  // would otherwise be failures enough in a row to eject it.
  it('counts the refusal once against a single instance its retries go back to, which stays in service', async () => {
    await withLog(async () => {
      const { status } = await get(gateway.port, '/solo/refused', refusedHead());
      expect(status).toBe(502);
      expect(await accessLineOf(gateway.process, '/solo/refused')).toMatchObject({ status: 502, errorClass: 'upstream-refused', attempts: 3 });
      expect(await admin.instance('solo', 's')).toMatchObject({ errors: 1, health: { state: 'healthy' } });
      expect(await upstreamErrors('solo')).toMatchObject({ 'upstream-refused': 1, 'repeated-refusal': 2 });
      expect(await get(gateway.port, '/solo/ordinary')).toEqual({ status: 200, body: 'solo' });
    });
  });

  // Only the same refusal met again is the request's doing: an instance that resets every request
  // with PROTOCOL_ERROR does not hide behind another's ENHANCE_YOUR_CALM of the request before it.
  it('counts a refusal of the other class against the instance that gives it: one instance refuses the head, the other resets every request', async () => {
    await withLog(async () => {
      const { status } = await get(gateway.port, '/duo/refused', refusedHead());
      expect(status).toBe(502);
      expect(await accessLineOf(gateway.process, '/duo/refused')).toMatchObject({ status: 502, attempts: 2 });
      expect(await Promise.all(['calm', 'broken'].map(async (id) => (await admin.instance('duo', id))?.errors))).toEqual([1, 1]);
      expect(await upstreamErrors('duo')).toEqual({ 'upstream-refused': 1, 'http2-protocol-error': 1 });
    });
  });

  // What passive health hears of each request's first refusal: an instance that refuses request
  // after request (overloaded, or limits that refuse ordinary heads) is still ejected.
  it('ejects a single instance that refuses one request after another, each counted once', async () => {
    await withLog(async () => {
      for (const sent of [1, 2]) expect((await get(gateway.port, `/lone/refused/${sent}`, refusedHead())).status).toBe(502);
      expect(await admin.instance('lone', 'l')).toMatchObject({ errors: 2, health: { state: 'unhealthy', reason: 'ejected' } });
      expect(await upstreamErrors('lone')).toEqual({ 'upstream-refused': 2, 'repeated-refusal': 4 });
    });
  });
});
