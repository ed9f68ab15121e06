import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../harness/admin-client.ts';
import { storePairFixture } from '../harness/config-store-pair.ts';
import { jsonLogLinesFrom, waitFor, type GatewayProcess } from '../harness/index.ts';

const TOKEN = 'config-store-delete-warnings-token-71c2';
const CONVERGENCE_MS = 20_000;

/**
 * A DELETE answers, as a PUT does, the refusals the gateways reading the store will log once the
 * object is gone: a route naming the middleware deleted. It answered 204 and the writer learnt of the
 * route taken out of service only from the gateways' logs.
 */
describe('admin deletes answer the warnings the gateways will log', () => {
  const pair = storePairFixture(TOKEN);

  const write = (admin: AdminClient, method: 'PUT' | 'DELETE', path: string, value?: unknown) =>
    admin.get(path, { method, ...(value === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) }) });

  async function answerOf(answer: Response): Promise<{ status: number; body: unknown }> {
    const text = await answer.text();
    return { status: answer.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  async function deleteMiddleware(root: string, gateway: GatewayProcess, admin: AdminClient): Promise<void> {
    expect((await write(admin, 'PUT', '/api/middlewares/guard', { hsts: { maxAge: '1y' } })).status).toBe(201);
    expect((await write(admin, 'PUT', '/api/routes/guarded', { path: '/guarded', service: 'echo', middlewares: ['guard'] })).status).toBe(201);
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('"/guarded"'), { timeoutMs: CONVERGENCE_MS, message: 'the route and its middleware to be applied' });
    const key = `${root}/routes/guarded`;
    const reason = 'references middleware "guard" that is declared neither in the file nor in the store';
    expect(await answerOf(await write(admin, 'DELETE', '/api/middlewares/guard'))).toEqual({ status: 200, body: { kind: 'middlewares', name: 'guard', deleted: true, warnings: [{ key, kind: 'routes', reason }] } });
    const logged = await waitFor(async () => (await jsonLogLinesFrom(gateway.process)).find((line) => line.msg === 'config store object refused; the rest applies' && line.key === key)?.reason, {
      timeoutMs: CONVERGENCE_MS,
      message: 'the gateway to log the route refused',
    });
    expect(logged).toBe(reason);
    // Deleting the route itself leaves nothing refused: no warning.
    expect(await answerOf(await write(admin, 'DELETE', '/api/routes/guarded'))).toEqual({ status: 200, body: { kind: 'routes', name: 'guarded', deleted: true, warnings: [] } });
  }

  it('etcd', async () => {
    const root = '/sb-delete-warnings';
    const { gateway, admin } = await pair().gateway(pair().url('etcd', root));
    await deleteMiddleware(root, gateway, admin);
  });

  it('ZooKeeper', async () => {
    const root = '/sb-delete-warnings-zk';
    const { gateway, admin } = await pair().gateway(pair().url('zookeeper', root));
    await deleteMiddleware(root, gateway, admin);
  });
});
