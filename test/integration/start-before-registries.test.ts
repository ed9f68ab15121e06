// A gateway started while etcd does not answer (a relay in front of it refuses connections), in
// one process and with workers: namespace routes answer 503 until the registry has listed its
// services, not 404; and with a config store, /ready says 503 until a configuration read from the
// store is in force, then stays 200 through a later outage of the store.
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../harness/cleanups.ts';
import { etcdWithBackend } from '../harness/etcd-fixture.ts';
import { makeTempDir, startGateway, startTcpProxy, waitFor, type GatewayProcess, type TcpProxy } from '../harness/index.ts';

/** A registry client's reconnect backoff (up to 5 s) and a new session after the relay is restored, on a loaded 2-core machine. */
const CONNECTS_WITHIN_MS = 60_000;
/** A gateway with workers starts, and then connects, in well under this even on a loaded machine. */
const TEST_TIMEOUT_MS = 180_000;

const registry = etcdWithBackend('users', 'sb-early');
const cleanups = cleanupsAfterEach();

/** A relay to etcd that refuses connections until `restore()`. */
async function refusingRelay(): Promise<TcpProxy> {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(registry.etcd.endpoints[0]!).port) });
  cleanups.push(() => proxy.close());
  proxy.cut();
  return proxy;
}

async function gatewayWith(config: string): Promise<GatewayProcess> {
  const gateway = await startGateway(`listen: 127.0.0.1:{{port}}\nadmin: 127.0.0.1:{{adminPort}}\naccessLog: false\n${config}`, {}, { listenTimeoutMs: CONNECTS_WITHIN_MS });
  cleanups.push(() => gateway.process.stop());
  return gateway;
}

/** One request on a connection of its own, so that with workers each may land on either. */
function getFresh(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, { agent: false, headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

async function readiness(gateway: GatewayProcess): Promise<{ status: number; ready: boolean; reason: string | null }> {
  const answer = await fetch(`http://127.0.0.1:${gateway.adminPort}/ready`);
  return { status: answer.status, ...((await answer.json()) as { ready: boolean; reason: string | null }) };
}

describe.each([1, 2])('a gateway started before etcd answers (workers: %i)', (workers) => {
  it('answers 503 naming the registry on a namespace route until etcd has listed its services, then routes them and 404s the rest', async () => {
    const root = registry.freshRoot();
    await registry.writer.put(`${root}/users/u1`).value(JSON.stringify({ id: 'u1', service: 'users', host: '127.0.0.1', port: registry.backend.port, weight: 1, protocol: 'http', metadata: {} }));
    const relay = await refusingRelay();
    const gateway = await gatewayWith(`workers: ${workers}\nregistries: ["etcd://${relay.address}${root}"]\nroutes:\n  - { name: services, path: /svc, namespace: true }\n`);

    // Fresh connections: with workers, the primary hands them out in turn, so each worker answers some.
    for (let index = 0; index < 6; index += 1) {
      const answer = await getFresh(`${gateway.url}/svc/users/7`);
      expect(answer.status, answer.body).toBe(503);
      expect(answer.headers['retry-after']).toBe('1');
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'no-instances', message: 'registry etcd not yet connected: no instance set loaded yet' });
    }
    // A path no namespace route could take is no route, connected or not.
    expect((await getFresh(`${gateway.url}/elsewhere/x`)).status).toBe(404);
    const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/svc/users/7`)).json()) as { outcome: string; route: { name: string; service: string } | null; notes: string[] };
    expect([explained.outcome, explained.route?.name, explained.route?.service]).toEqual(['no-instances', 'services', 'users']);
    expect(explained.notes.join('\n')).toContain(`registry etcd:http://${relay.address}${root} not yet connected`);

    relay.restore();
    await waitFor(async () => (await getFresh(`${gateway.url}/svc/users/7`)).status === 200, { timeoutMs: CONNECTS_WITHIN_MS, intervalMs: 100, message: 'the listed service to be routed once etcd answers' });
    const unknown = await getFresh(`${gateway.url}/svc/nobody/7`);
    expect([unknown.status, JSON.parse(unknown.body).error]).toEqual([404, 'no-route']);
  }, TEST_TIMEOUT_MS);

  it('says /ready 503 while it serves its file alone, 200 once the store is read, and stays 200 when the store goes away again', async () => {
    const root = registry.freshRoot();
    await registry.writer.put(`${root}/routes/stored`).value(JSON.stringify({ path: '/stored', service: 'users' }));
    const relay = await refusingRelay();
    const snapshot = join(await makeTempDir('sb-early-snap-'), 'store.json');
    const gateway = await gatewayWith(`workers: ${workers}
configStore: { url: "etcd://${relay.address}${root}", timeout: 1s, snapshot: "${snapshot}" }
services:
  users: { instances: ["127.0.0.1:${registry.backend.port}"] }
routes:
  - { name: file-route, path: /file, service: users }
`);
    // It serves, from its file: but not what the gateways beside it serve.
    expect((await getFresh(`${gateway.url}/file`)).status).toBe(200);
    expect((await getFresh(`${gateway.url}/stored`)).status).toBe(404);
    expect(await readiness(gateway)).toEqual({ status: 503, ready: false, reason: 'no configuration read from the config store (etcd) is in force yet: the gateway serves the configuration file alone' });

    relay.restore();
    await waitFor(async () => (await readiness(gateway)).ready, { timeoutMs: CONNECTS_WITHIN_MS, intervalMs: 100, message: '/ready to say ready once the store is read' });
    await waitFor(async () => (await getFresh(`${gateway.url}/stored`)).status === 200, { timeoutMs: 5_000, intervalMs: 20, message: 'the stored route to be served once ready' });

    relay.cut();
    await waitFor(async () => {
      const config = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/config`)).json()) as { store: { reason: string | null } };
      return config.store.reason !== null;
    }, { timeoutMs: CONNECTS_WITHIN_MS, message: '/api/config to say the store is not read' });
    expect(await readiness(gateway)).toEqual({ status: 200, ready: true, reason: null });
    expect((await getFresh(`${gateway.url}/stored`)).status).toBe(200);
  }, TEST_TIMEOUT_MS);
});
