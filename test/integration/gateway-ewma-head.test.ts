import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** Far more than the socket buffers between the upstream and the client: a client that reads nothing holds the upstream still. */
const LARGE_BODY = 32 * 1024 * 1024;
/** How long the slow client reads nothing once the upstream is held still: the scenario, an order of magnitude above a loopback answer's head. */
const CLIENT_HOLD_MS = 2_000;

/** A real backend on port 0, HTTP/1.1 or h2c: `/big` streams `LARGE_BODY` bytes at once (its head first), anything else answers `ok`. */
interface Backend {
  readonly address: string;
  /** How many `/big` answers it was asked for. */
  bigAnswers: number;
  /** Its `/big` answer could not be written on for a full buffer: the client holds it still. */
  heldStill: boolean;
  close(): Promise<void>;
}

async function startBackend(protocol: 'http' | 'h2c'): Promise<Backend> {
  const backend = { bigAnswers: 0, heldStill: false } as Backend;
  const pump = (sink: { write(chunk: Buffer): boolean; once(event: 'drain', listener: () => void): unknown; end(): void }): void => {
    backend.bigAnswers += 1;
    const chunk = Buffer.alloc(64 * 1024, 120);
    let sent = 0;
    const more = (): void => {
      while (sent < LARGE_BODY) {
        sent += chunk.length;
        if (!sink.write(chunk)) {
          backend.heldStill = true;
          return void sink.once('drain', more);
        }
      }
      sink.end();
    };
    more();
  };
  let server: HttpServer | Http2Server;
  if (protocol === 'http') {
    server = createHttpServer((request, response) => {
      request.resume();
      if (request.url !== '/big') return void response.end('ok');
      response.writeHead(200, { 'content-length': String(LARGE_BODY) });
      pump(response);
    });
  } else {
    server = createHttp2Server();
    server.on('session', (session) => session.on('error', () => undefined));
    server.on('stream', (stream: ServerHttp2Stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':path'] !== '/big') {
        stream.respond({ ':status': 200 });
        return void stream.end('ok');
      }
      stream.respond({ ':status': 200, 'content-length': String(LARGE_BODY) });
      pump(stream);
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(backend, {
    address: `127.0.0.1:${port}`,
    close: () => {
      if ('closeAllConnections' in server) server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

describe.each([{ protocol: 'http' as const }, { protocol: 'h2c' as const }])("p2c-ewma's latency of an $protocol upstream whose client reads its answer slowly", ({ protocol }) => {
  let backends: Backend[];
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backends = [await startBackend(protocol), await startBackend(protocol)];
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  pair:
    protocol: ${protocol}
    instances: [${backends.map((backend) => backend.address).join(', ')}]
    balancer: p2c-ewma
routes:
  - { path: /pair, service: pair, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'pair')?.instances.length === 2, { message: 'the pair service to list both instances' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all((backends ?? []).map((backend) => backend.close()));
  });

  it("samples the time to the answer's head: a client that takes seconds over the body leaves the estimate in milliseconds", async () => {
    const client = connect(gateway.port, '127.0.0.1');
    client.pause();
    const sentAt = performance.now();
    client.write('GET /pair/big HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    const served = await waitFor(() => backends.find((backend) => backend.heldStill), { message: 'the backend answering /big to be held still by its client', timeoutMs: 15_000 });
    // The gateway read the head before it stopped reading the body, which is what holds the backend still.
    const heldMs = performance.now() - sentAt;
    const instance = async () => (await admin.services()).find((service) => service.name === 'pair')!.instances.find((candidate) => candidate.address === served.address)!;
    // Its head came, its body cannot have ended while the client reads nothing: the request is still
    // in flight on its instance (its load for p2c-ewma), though its latency is sampled to the head.
    expect((await instance()).inFlight).toBe(1);
    // The scenario, not a wait for something: the client reads nothing for a while longer.
    await delay(CLIENT_HOLD_MS);
    let received = 0;
    client.on('data', (chunk: Buffer) => (received += chunk.length));
    client.resume();
    await new Promise((resolve) => client.on('close', resolve));
    expect(received, await logOf(gateway.process)).toBeGreaterThan(LARGE_BODY);
    expect(backends.map((backend) => backend.bigAnswers).sort()).toEqual([0, 1]);

    // The pick is reported when its attempt ends, after the last byte: its in-flight count is then back to 0.
    const after = await waitFor(async () => {
      const view = await instance();
      return view.inFlight === 0 ? view : undefined;
    }, { message: 'the answer to /big to be reported' });
    // To the head: within the time until the backend was held still. Over the client's hold the sample
    // would read at least that and CLIENT_HOLD_MS more.
    expect(after.latencyMs).not.toBeNull();
    expect(after.latencyMs!).toBeLessThanOrEqual(heldMs);
    expect(after.errors).toBe(0);
  }, 60_000);
});
