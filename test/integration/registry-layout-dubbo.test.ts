import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startBackend, startGateway, startKazooWriter, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type KazooWriter, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const GREETER = 'org.example.Greeter';
const USERS = 'org.example.Users';

/** A unary method with raw bytes on the wire: enough gRPC for a Triple provider without .proto files. */
const SAY_HELLO = {
  path: `/${GREETER}/SayHello`,
  requestStream: false,
  responseStream: false,
  requestSerialize: (value: Buffer) => value,
  requestDeserialize: (value: Buffer) => value,
  responseSerialize: (value: Buffer) => value,
  responseDeserialize: (value: Buffer) => value,
} as const;

/** The znode Dubbo writes for a provider: its URL through java.net.URLEncoder under `/dubbo/<interface>/providers`. */
const providerNode = (iface: string, url: string) => `/dubbo/${iface}/providers/${encodeURIComponent(url)}`;

/** Issue 16, must show 2: Dubbo providers registered by kazoo, a Triple one (grpc-js) and REST ones. */
describe('the Dubbo layout: kazoo writes /dubbo/<interface>/providers/<provider URL>', () => {
  let zk: ZooKeeperCluster;
  let writer: KazooWriter;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let tri: grpc.Server;
  let triPort: number;
  let client: grpc.Client;
  const rest = new Map<string, BackendProcess>();

  beforeAll(async () => {
    zk = await startZooKeeper();
    tri = new grpc.Server();
    tri.addService({ SayHello: SAY_HELLO }, { SayHello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, Buffer.from(`hello ${call.request.toString()} from tri`)) });
    triPort = await new Promise<number>((resolve, reject) => tri.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))));
    for (const name of ['heavy', 'light', 'off']) rest.set(name, await startBackend({ name }));
    writer = await startKazooWriter(zk.connectString);
    const port = (name: string) => rest.get(name)!.port;
    await writer.run(`ephemeral ${providerNode(GREETER, `tri://127.0.0.1:${triPort}/${GREETER}?application=demo&side=provider&version=1.0.0&weight=100`)} 127.0.0.1`);
    await writer.run(`ephemeral ${providerNode(USERS, `rest://127.0.0.1:${port('heavy')}/${USERS}?application=users&version=2.0.0&weight=300`)}`);
    await writer.run(`ephemeral ${providerNode(USERS, `rest://127.0.0.1:${port('light')}/${USERS}?application=users&version=2.0.0&weight=100`)}`);
    await writer.run(`ephemeral ${providerNode(USERS, `rest://127.0.0.1:${port('off')}/${USERS}?application=users&disabled=true`)}`);
    await writer.run(`ephemeral ${providerNode(USERS, `dubbo://127.0.0.1:20880/${USERS}?application=users`)}`);
    // An interface with consumers only: no providers node at all.
    await writer.run(`ephemeral /dubbo/org.example.Lonely/consumers/${encodeURIComponent('consumer://127.0.0.1/org.example.Lonely?side=consumer')}`);
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: 127.0.0.1:{{adminPort}}
registries: ["zk://${zk.connectString}?layout=dubbo"]
services:
  ${USERS}: { balancer: weighted-round-robin }
routes:
  - { path: /${GREETER}, service: ${GREETER} }
  - { namespace: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const Client = grpc.makeGenericClientConstructor({ SayHello: SAY_HELLO }, GREETER);
    client = new Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await gateway?.process.stop();
    await writer?.close();
    await Promise.all([...rest.values()].map((backend) => backend.process.stop()));
    tri?.forceShutdown();
    await zk?.close();
  });

  /** One gRPC call through the gateway with a deadline; the reply text or the failure. */
  function sayHello(name: string): Promise<string> {
    return new Promise((resolve) => {
      (client as unknown as { SayHello: (request: Buffer, options: grpc.CallOptions, done: grpc.requestCallback<Buffer>) => void }).SayHello(
        Buffer.from(name),
        { deadline: Date.now() + 5_000 },
        (error, reply) => resolve(error ? `error ${error.code}: ${error.details}` : reply!.toString()),
      );
    });
  }

  it('routes a gRPC call to the Triple provider over h2c', async () => {
    const reply = await waitFor(async () => ((await sayHello('dubbo')) === 'hello dubbo from tri' ? 'ok' : undefined), { timeoutMs: CONVERGENCE_MS, message: 'the Triple provider answering through the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}; last reply ${await sayHello('dubbo')}\n${await logOf(gateway.process)}`);
    });
    expect(reply).toBe('ok');
  });

  it('routes the REST providers by their registry weights and never the disabled one', async () => {
    await waitFor(async () => (await admin.services()).find((service) => service.name === USERS)?.instances.length === 2, { timeoutMs: CONVERGENCE_MS, message: 'both enabled REST providers listed' });
    const counts = new Map<string, number>();
    for (let index = 0; index < 400; index += 1) {
      const response = await fetch(`${gateway.url}/${USERS}/users/7`);
      const name = response.status === 200 ? ((await response.json()) as { name: string }).name : `status ${response.status}`;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    // Smooth weighted round-robin with 300:100 is exact over whole cycles.
    expect(Object.fromEntries(counts)).toEqual({ heavy: 300, light: 100 });
  });

  it('lists the dubbo:// provider as not routable with the reason, leaves the disabled one out silently, and reads a consumers-only interface as no service', async () => {
    const users = await waitFor(async () => (await admin.services()).find((service) => service.name === USERS && service.instances.length === 2), {
      timeoutMs: CONVERGENCE_MS,
      message: 'the REST providers listed',
    });
    const reasons = users.providers.flatMap((provider) => provider.invalidEntries.map((entry) => entry.reason));
    // An operator disabling a provider is no invalid entry: only the dubbo:// one is listed.
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/dubbo binary protocol is not supported$/);
    expect(users.instances.map((instance) => instance.metadata.version)).toEqual(['2.0.0', '2.0.0']);
    expect((await admin.services()).map((service) => service.name)).not.toContain('org.example.Lonely');
    expect((await fetch(`${gateway.url}/org.example.Lonely/x`)).status).toBe(404);
  });
});
