import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import { echoClient, grpcBackendCommand, unary } from '../harness/grpc.ts';
import { freePort, logOf, startAgent, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess, type ManagedProcess } from '../harness/index.ts';

/** One open bidi `test.Echo/Chat` call on a client with a connection of its own. */
interface OpenChat {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  /** The messages the server sent back so far. */
  readonly received: string[];
  /** Resolves with the call's final status. */
  readonly status: Promise<grpc.StatusObject>;
}

/** Opens a Chat call to `address` on a connection of its own and resolves once the server echoed its first message, so it is in flight upstream. */
async function openChat(address: string, first: string): Promise<OpenChat> {
  const client = echoClient(address, { ownConnection: true });
  const call = (client as unknown as { Chat(): grpc.ClientDuplexStream<Buffer, Buffer> }).Chat();
  const received: string[] = [];
  call.on('data', (message: Buffer) => received.push(message.toString()));
  call.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.write(Buffer.from(first));
  await waitFor(() => received.length > 0, { timeoutMs: 10_000, message: `the first answer of chat ${first}` });
  return { client, call, received, status };
}

describe('workers: 2 serving gRPC streams over h2c to backends registered in etcd', () => {
  let etcd: EtcdCluster;
  let gateway: GatewayProcess;
  const agents: ManagedProcess[] = [];
  const chats: OpenChat[] = [];

  const admin = async <T>(path: string): Promise<T> => (await (await fetch(`http://127.0.0.1:${gateway.adminPort}${path}`)).json()) as T;
  const workers = () => admin<WorkerView[]>('/api/workers');
  const instances = async () => (await admin<{ services: { name: string; instances: { id: string; inFlight: number; requests: number }[] }[] }>('/api/services')).services.find((service) => service.name === 'test.Echo')?.instances ?? [];

  beforeAll(async () => {
    etcd = await startEtcd();
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
workers: { count: 2, heartbeatTimeout: 3s }
accessLog: false
registries: ["etcd://${etcd.endpoints[0]!.replace('http://', '')}/services"]
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  test.Echo: { protocol: grpc }
routes:
  - { grpcService: test.Echo, service: test.Echo }
shutdown: { drainTimeout: 8s }
`);
    for (const name of ['g1', 'g2']) {
      const port = await freePort();
      agents.push(await startAgent(['--registry', `etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`, '--service', 'test.Echo', '--port', String(port), '--id', name, '--protocol', 'grpc', '--health', 'grpc', '--interval', '200ms', '--rise', '1', '--', ...grpcBackendCommand(port, name)]));
    }
    await waitFor(async () => (await instances()).length === 2 && (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 60_000, message: 'both instances listed and both workers listening' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    const client = echoClient(`127.0.0.1:${gateway.port}`);
    await waitFor(async () => (await unary(client, 'Echo', 'ready', 2_000)).code === 0, { timeoutMs: 60_000, message: 'a call through the gateway' });
    client.close();
  }, 180_000);

  afterAll(async () => {
    for (const chat of chats) chat.client.close();
    await gateway?.process.kill();
    await Promise.all(agents.map((agent) => agent.stop()));
    await etcd?.close();
  });

  it("shows in /api/services the streams every worker has in flight to each instance, and none once they end", async () => {
    // Each chat on a connection of its own: the primary hands connections to the workers in turn.
    for (let index = 0; index < 6; index += 1) chats.push(await openChat(`127.0.0.1:${gateway.port}`, `c${index}`));
    await waitFor(async () => (await workers()).every((worker) => worker.inFlight > 0), { timeoutMs: 10_000, message: 'both workers to hold streams' });
    await waitFor(async () => (await instances()).reduce((sum, instance) => sum + instance.inFlight, 0) === 6, { timeoutMs: 10_000, message: 'the six streams in flight in the admin view' });
    for (const chat of chats.splice(0)) {
      chat.call.end();
      expect((await chat.status).code).toBe(grpc.status.OK);
      chat.client.close();
    }
    await waitFor(async () => (await instances()).every((instance) => instance.inFlight === 0), { timeoutMs: 10_000, message: 'no stream in flight in the admin view' });
  });

  it("drops the streams of a worker that died from /api/services, and keeps the other worker's", async () => {
    for (let index = 0; index < 6; index += 1) chats.push(await openChat(`127.0.0.1:${gateway.port}`, `k${index}`));
    await waitFor(async () => (await workers()).every((worker) => worker.inFlight > 0), { timeoutMs: 10_000, message: 'both workers to hold streams' });
    await waitFor(async () => (await instances()).reduce((sum, instance) => sum + instance.inFlight, 0) === 6, { timeoutMs: 10_000, message: 'the six streams in flight in the admin view' });
    const [victim, survivor] = await workers();
    process.kill(victim!.pid!, 'SIGKILL');
    // Its replacement has nothing in flight and so reports nothing: the dead worker's count must go with it.
    await waitFor(async () => (await instances()).reduce((sum, instance) => sum + instance.inFlight, 0) === survivor!.inFlight, { timeoutMs: 20_000, message: `only the surviving worker's ${survivor!.inFlight} streams in the admin view` });
    for (const chat of chats.splice(0)) {
      chat.call.end();
      chat.client.close();
    }
    await waitFor(async () => (await instances()).every((instance) => instance.inFlight === 0), { timeoutMs: 10_000, message: 'no stream in flight in the admin view' });
  });
});
