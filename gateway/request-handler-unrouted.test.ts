import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config/load.ts';
import { fakeProxy, serveMiddleware, type MiddlewareServer } from './middleware/middleware-testing.ts';
import { createRequestRunner } from './request-handler.ts';

const CONFIG = `
accessLog: false
routes:
  - { name: orders, path: /orders, service: orders }
  - { name: services, path: /svc, namespace: true }
  - { name: calls, host: grpc.test, namespace: grpc }
`;
const ETCD = 'etcd:http://127.0.0.1:2379/services';

describe('a request no route takes', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** The runner of CONFIG over the services `listed`, while the registries `unconnected` have never connected. */
  const serveWith = async (listed: readonly string[], unconnected: readonly string[]) => {
    const runner = createRequestRunner(parseConfig('gateway.yaml', CONFIG), {
      proxy: fakeProxy(),
      hasService: (name) => listed.includes(name),
      // As the aggregator answers: none once any registry has listed the service.
      unconnectedRegistriesOf: (service) => (listed.includes(service) ? [] : unconnected),
    });
    server = await serveMiddleware([], runner);
    return server;
  };

  it('gets 503 no-instances naming the registry, with Retry-After, when a namespace route would take it for a service a registry not yet connected may list', async () => {
    const { send, contexts } = await serveWith([], [ETCD]);
    const answer = await send('/svc/users/7');
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(JSON.parse(answer.body.toString())).toMatchObject({ error: 'no-instances', message: 'registry etcd not yet connected: no instance set loaded yet' });
    // The route's name is logged and counted, never the client's made-up service name.
    expect([contexts[0]!.routeName, contexts[0]!.service]).toEqual(['services', '']);
  });

  it('gets a gRPC UNAVAILABLE, which a gRPC client retries, for a call a namespace route would take', async () => {
    const { send } = await serveWith([], [ETCD]);
    const answer = await send('/helloworld.Greeter/SayHello', { method: 'POST', headers: { host: 'grpc.test', 'content-type': 'application/grpc' } });
    expect([answer.status, answer.headers['grpc-status']]).toEqual([200, '14']);
  });

  it.each(['/other/x', '/svc', '/svc/'])('gets 404 at %s, which no namespace route could take, though a registry has not connected', async (path) => {
    const { send } = await serveWith([], [ETCD]);
    expect((await send(path)).status).toBe(404);
  });

  it('gets 404 for a service no registry lists once every registry has connected', async () => {
    const { send } = await serveWith(['users'], []);
    const answer = await send('/svc/nobody/7');
    expect([answer.status, JSON.parse(answer.body.toString()).error]).toEqual([404, 'no-route']);
  });

  it('is routed as before when the service is listed, whatever the other registries do', async () => {
    const { send } = await serveWith(['users'], [ETCD]);
    const answer = await send('/svc/users/7');
    expect([answer.status, JSON.parse(answer.body.toString()).path]).toEqual([200, '/7']);
  });
});
