import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** A real HTTP/1.1 backend on port 0 that answers a 503 head and a first chunk at once, and holds the rest of its body. */
async function startBackend(): Promise<{ address: string; close: () => Promise<void> }> {
  const server: Server = createServer((_request, response) => {
    response.writeHead(503, { 'content-type': 'text/plain' });
    response.write('first');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function rawClient(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, received: () => text, closed };
}

describe("p2c-ewma's latency sample of a failing answer", () => {
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const instance = async (service: string) => (await admin.services()).find((candidate) => candidate.name === service)!.instances[0]!;

  beforeAll(async () => {
    backend = await startBackend();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  failing: { protocol: http, instances: ["${backend.address}"], balancer: p2c-ewma, healthCheck: false, outlierDetection: false, retries: false }
routes:
  - { path: /failing, service: failing, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).some((service) => service.name === 'failing' && service.instances.length === 1), { message: 'the service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.close();
  });

  it("does not take a 5xx answer's head for a fast answer when the client leaves during its body", async () => {
    const client = rawClient(gateway.port);
    client.socket.write('GET /failing/failing HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    await waitFor(() => client.received().includes('first'), { message: 'the failing answer to start' });
    client.socket.destroy();
    const after = await waitFor(async () => {
      const view = await instance('failing');
      return view.inFlight === 0 ? view : undefined;
    }, { message: 'the cancelled request to be reported' });
    // Either no sample (the client's cancel hides the 503) or the failure penalty: never a fast answer.
    expect(after.latencyMs === 0 || after.latencyMs! >= 1_000, `latencyMs ${after.latencyMs}`).toBe(true);
  }, 60_000);
});
