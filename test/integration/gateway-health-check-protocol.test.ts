import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { echoClient, startGrpcBackend, unary } from '../harness/grpc.ts';
import { logOf, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** A management listener answering `GET /healthz` with a status the test sets, recording what reached it. */
interface ManagementPort {
  status: number;
  readonly requests: Array<{ method: string; path: string; httpVersion: string }>;
  readonly server: Server;
}

function listenManagement(host: string, port: number): Promise<ManagementPort> {
  const management = { status: 200, requests: [] } as unknown as ManagementPort;
  const server = createServer((request, response) => {
    management.requests.push({ method: request.method ?? '', path: request.url ?? '', httpVersion: request.httpVersion });
    response.statusCode = request.url === '/healthz' ? management.status : 404;
    response.end();
  });
  Object.assign(management, { server });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(management));
  });
}

describe('healthCheck.protocol: gRPC instances checked over plain HTTP on their management port', () => {
  const backends: BackendProcess[] = [];
  const management: ManagementPort[] = [];
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let client: ReturnType<typeof echoClient>;

  /** Which backend answered each of `count` calls through the gateway ('' for a failed call). */
  async function answeredBy(count: number): Promise<string[]> {
    const names: string[] = [];
    for (let call = 0; call < count; call += 1) {
      const outcome = await unary(client, 'Echo', 'x', 5_000);
      names.push(outcome.code === 0 ? outcome.value!.split(':')[0]! : '');
    }
    return names;
  }

  beforeAll(async () => {
    // Two instances on hosts of their own, so that the one management port of the setting is theirs alone.
    backends.push(await startGrpcBackend('grpc-a', '127.0.0.1'), await startGrpcBackend('grpc-b', '127.0.0.2'));
    management.push(await listenManagement('127.0.0.1', 0));
    const managementPort = (management[0]!.server.address() as AddressInfo).port;
    management.push(await listenManagement('127.0.0.2', managementPort));
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  echo:
    protocol: grpc
    instances: [127.0.0.1:${backends[0]!.port}, 127.0.0.2:${backends[1]!.port}]
    panicThreshold: 0
    outlierDetection: false
    healthCheck: { protocol: http, port: ${managementPort}, path: /healthz, interval: 200ms, timeout: 5s, unhealthyThreshold: 2, healthyThreshold: 1 }
routes:
  - { grpcService: test.Echo, service: echo }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    client = echoClient(`127.0.0.1:${gateway.port}`);
  });

  afterAll(async () => {
    client?.close();
    await gateway?.process.stop();
    await Promise.all(backends.map((backend) => backend.process.stop()));
    await Promise.all(management.map((listener) => new Promise((resolve) => listener.server.close(resolve))));
  });

  async function reasons(): Promise<string[]> {
    const echo = (await admin.services()).find((service) => service.name === 'echo');
    return (echo?.instances ?? []).map((instance) => `${instance.host}=${instance.health.reason}`).sort();
  }

  it('sends HTTP/1.1 GET /healthz to each instance\'s management port, which passes them', async () => {
    await waitFor(async () => (await reasons()).join() === '127.0.0.1=check-passing,127.0.0.2=check-passing', {
      timeoutMs: 10_000,
      message: 'both gRPC instances passing checks of their HTTP management port',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await reasons())}\n${await logOf(gateway.process)}`);
    });
    for (const listener of management) {
      expect(listener.requests.length).toBeGreaterThan(0);
      expect(listener.requests.every((request) => request.method === 'GET' && request.path === '/healthz' && request.httpVersion === '1.1')).toBe(true);
    }
    await waitFor(async () => new Set(await answeredBy(10)).size === 2, { timeoutMs: 10_000, message: 'calls reaching both instances' });
  });

  it('an instance whose /healthz turns 503 stops getting calls, and gets them again when it turns 200', async () => {
    management[0]!.status = 503;
    await waitFor(async () => (await reasons()).join() === '127.0.0.1=check-failing,127.0.0.2=check-passing', { timeoutMs: 10_000, message: 'grpc-a failing its HTTP check' });
    // The worker routes by the verdict the primary sends it, which may land just after the admin API shows it.
    await waitFor(async () => (await answeredBy(5)).every((name) => name === 'grpc-b'), { timeoutMs: 10_000, message: 'the worker routing around grpc-a' });
    // Its gRPC health service still says SERVING: only the HTTP check on the management port took it out.
    expect(await answeredBy(20)).toEqual(Array.from({ length: 20 }, () => 'grpc-b'));
    management[0]!.status = 200;
    await waitFor(async () => (await answeredBy(10)).includes('grpc-a'), { timeoutMs: 10_000, message: 'grpc-a back in rotation' });
  });
});
