import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeGoMicroService,
  etcdctlDelete,
  etcdctlPut,
  goMicroNodeKey,
  logOf,
  startBackend,
  startEtcd,
  startGateway,
  waitFor,
  type BackendProcess,
  type EtcdCluster,
  type GatewayProcess,
  type GoMicroService,
} from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const REQUEST_TIMEOUT_MS = 5_000;

/** Issue 16, must show 1 (go-micro in etcd), and a registrator-style flat layout written with etcdctl. */
describe('etcd layouts: go-micro and registrator', () => {
  let etcd: EtcdCluster;
  let endpoint: string;
  let writer: Etcd3;
  let gateway: GatewayProcess;
  const backends = new Map<string, BackendProcess>();

  const address = (name: string) => `127.0.0.1:${backends.get(name)!.port}`;
  const greeter = (nodes: string[]): GoMicroService => ({
    name: 'greeter',
    version: 'latest',
    metadata: null,
    endpoints: [{ name: 'Greeter.Hello', request: { name: 'Request', type: 'Request', values: null }, response: null, metadata: { stream: 'false' } }],
    nodes: nodes.map((name) => ({ id: `greeter-${name}`, address: address(name), metadata: { protocol: 'mucp', registry: 'etcd', server: 'mucp', transport: 'http' } })),
  });

  async function answered(path: string, requests = 12): Promise<string[]> {
    const names = new Set<string>();
    for (let index = 0; index < requests; index += 1) {
      const response = await fetch(`${gateway.url}${path}`);
      const body = await response.text();
      names.add(response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`);
    }
    return [...names].sort();
  }

  async function converge(path: string, expected: readonly string[], message: string): Promise<void> {
    await waitFor(async () => (await answered(path)).join() === expected.join(), { timeoutMs: CONVERGENCE_MS, intervalMs: 100, message }).catch(async (error: Error) => {
      throw new Error(`${error.message}; last answers ${JSON.stringify(await answered(path))}\n${await logOf(gateway.process)}`);
    });
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    endpoint = etcd.endpoints[0]!;
    for (const name of ['g1', 'g2', 'g3', 'w1']) backends.set(name, await startBackend({ name }));
    writer = new Etcd3({ hosts: endpoint, defaultCallOptions: () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS }) });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
registries:
  - "etcd://${endpoint.replace('http://', '')}?layout=go-micro"
  - "etcd://${endpoint.replace('http://', '')}/backends?layout=registrator"
routes:
  - { namespace: true }
`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await Promise.all([...backends.values()].map((backend) => backend.process.stop()));
    await etcd?.close();
  });

  it('routes /greeter/say/hello to a node written as go-micro writes it and to one put with etcdctl', async () => {
    // As go-micro's etcd registry registers node g1: its key path, its JSON, one node per key.
    await writer.put(goMicroNodeKey('greeter', 'greeter-g1')).value(encodeGoMicroService(greeter(['g1'])));
    await etcdctlPut(endpoint, '/micro/registry/greeter/greeter-g2', `{"name":"greeter","version":"latest","metadata":null,"endpoints":null,"nodes":[{"id":"greeter-g2","address":"${address('g2')}","metadata":{"protocol":"mucp"}}]}`);
    await converge('/greeter/say/hello', ['g1', 'g2'], 'both go-micro nodes behind /greeter');
    const echoed = (await (await fetch(`${gateway.url}/greeter/say/hello`)).json()) as { url: string };
    expect(echoed.url).toBe('/say/hello');
  });

  it('adds an instance when a node is added to a Service JSON', async () => {
    await writer.put(goMicroNodeKey('greeter', 'greeter-g1')).value(encodeGoMicroService(greeter(['g1', 'g3'])));
    await converge('/greeter/say/hello', ['g1', 'g2', 'g3'], 'the added node routed');
    await etcdctlDelete(endpoint, '/micro/registry/greeter/greeter-g2');
    await converge('/greeter/say/hello', ['g1', 'g3'], 'the deleted key no longer routed');
  });

  it('routes a registrator-style ip:port value put with etcdctl', async () => {
    await etcdctlPut(endpoint, '/backends/web/web-1', address('w1'));
    await converge('/web/who', ['w1'], 'the registrator entry behind /web');
  });
});
