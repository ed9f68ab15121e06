import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { jsonLogLinesFrom, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const TOKEN = 'config-store-write-warnings-token-5b3f';
const ROOT = '/sb-write-warnings';
const CONVERGENCE_MS = 20_000;

interface Warning {
  readonly key: string;
  readonly kind: string;
  readonly reason: string;
  readonly lastGoodInForce?: true;
}

/**
 * A write the object's own check takes but the gateways reading the store will refuse once it is
 * merged with the rest (a route naming a middleware neither the file nor the store declares)
 * answers with `warnings`: the key and reason each gateway then logs, so the writer learns it at once.
 */
describe('admin writes answer the warnings the gateways will log', () => {
  let etcd: EtcdCluster;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const put = (path: string, value: unknown) => admin.get(path, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });

  async function warningsOf(answer: Response, status: number): Promise<Warning[]> {
    const text = await answer.text();
    expect(answer.status, text).toBe(status);
    return (JSON.parse(text) as { warnings: Warning[] }).warnings;
  }

  async function loggedRefusal(key: string): Promise<string> {
    return await waitFor(async () => (await jsonLogLinesFrom(gateway.process)).find((line) => line.msg === 'config store object refused; the rest applies' && line.key === key)?.reason as string | undefined, {
      timeoutMs: CONVERGENCE_MS,
      message: `the gateway to log the refusal of ${key}`,
    });
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: { url: "etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${ROOT}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:1"] }
middlewares:
  hsts-on: { hsts: { maxAge: 1y } }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    await waitFor(async () => ((await (await admin.get('/api/config')).json()) as { store: { source: string } }).store.source === 'store', { timeoutMs: CONVERGENCE_MS, message: 'the store to be read' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await etcd?.close();
  }, 60_000);

  it('answers a valid route with no warnings', async () => {
    expect(await warningsOf(await put('/api/routes/fine', { path: '/fine', service: 'echo', middlewares: ['hsts-on'] }), 201)).toEqual([]);
  });

  it('answers a route naming an unknown middleware with the refusal the gateway then logs, on the dry run too', async () => {
    const key = `${ROOT}/routes/unknown-mw`;
    const route = { path: '/unknown-mw', service: 'echo', middlewares: ['nope'] };
    const dryRun = await warningsOf(await put('/api/routes/unknown-mw?dryRun=true', route), 200);
    expect(dryRun).toEqual([{ key, kind: 'routes', reason: 'references middleware "nope" that is declared neither in the file nor in the store' }]);
    const written = await warningsOf(await put('/api/routes/unknown-mw', route), 201);
    expect(written).toEqual(dryRun);
    expect(await loggedRefusal(key)).toBe(written[0]!.reason);
  });

  it('says that the last good value stays when a route in force is replaced by one the gateways refuse', async () => {
    const key = `${ROOT}/routes/replaced`;
    expect(await warningsOf(await put('/api/routes/replaced', { path: '/replaced', service: 'echo' }), 201)).toEqual([]);
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('"/replaced"'), { timeoutMs: CONVERGENCE_MS, message: 'the route to be applied' });
    const written = await warningsOf(await put('/api/routes/replaced', { path: '/replaced', service: 'echo', middlewares: ['nope'] }), 200);
    expect(written).toEqual([{ key, kind: 'routes', reason: 'references middleware "nope" that is declared neither in the file nor in the store; its last good value stays in force', lastGoodInForce: true }]);
    expect(await loggedRefusal(key)).toBe(written[0]!.reason);
  });
});
