import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** How long the scenario keeps the gateway waiting (on its own queue, or on an instance slow to read an upload): far above a loopback answer's head. */
const HOLD_MS = 1_500;
/** More than every buffer between the client and the instance holds (socket buffers, node's streams, HTTP/2 windows): the gateway cannot have the whole body before the instance reads it. */
const UPLOAD_BYTES = 64 * 1024 * 1024;

/**
 * A real backend on port 0, HTTP/1.1 or h2c with one stream per connection: `/hold` answers its
 * head and a first chunk at once and ends its body only at `releaseHeld()`; `/slow-reader` leaves the
 * request body unread for `HOLD_MS`, then reads it and answers once it has it all; anything else
 * answers `ok` at once.
 */
interface Backend {
  readonly address: string;
  /** Requests whose head it received. */
  arrivals: number;
  /** How long `/slow-reader` left its last upload unread. */
  heldMs: number | undefined;
  releaseHeld(): void;
  close(): Promise<void>;
}

async function startBackend(protocol: 'http' | 'h2c'): Promise<Backend> {
  const held: Array<() => void> = [];
  const backend = { arrivals: 0, heldMs: undefined, releaseHeld: () => held.splice(0).forEach((end) => end()) } as Backend;
  type Answer = { head(): void; write(text: string): void; end(text?: string): void; read(): void; onBodyEnd(listener: () => void): void };
  const serve = (path: string, answer: Answer): void => {
    backend.arrivals += 1;
    if (path === '/slow-reader') {
      const pausedAt = performance.now();
      // The scenario, not a wait for something: the instance is slow to read.
      void delay(HOLD_MS).then(() => {
        backend.heldMs = performance.now() - pausedAt;
        answer.onBodyEnd(() => (answer.head(), answer.end('ok')));
        answer.read();
      });
      return;
    }
    answer.read();
    if (path === '/hold') {
      answer.head();
      answer.write('first');
      return void held.push(() => answer.end('last'));
    }
    answer.head();
    answer.end('ok');
  };
  let server: HttpServer | Http2Server;
  if (protocol === 'http') {
    server = createHttpServer((request, response) => {
      let bodyEnded = false;
      const waiting: Array<() => void> = [];
      request.on('end', () => ((bodyEnded = true), waiting.splice(0).forEach((listener) => listener())));
      serve(request.url ?? '/', {
        read: () => request.resume(),
        head: () => response.writeHead(200, { 'content-type': 'text/plain' }),
        write: (text) => response.write(text),
        end: (text) => response.end(text),
        onBodyEnd: (listener) => (bodyEnded ? listener() : waiting.push(listener)),
      });
    });
  } else {
    server = createHttp2Server({ settings: { maxConcurrentStreams: 1 } });
    server.on('session', (session) => session.on('error', () => undefined));
    server.on('stream', (stream: ServerHttp2Stream, headers) => {
      stream.on('error', () => undefined);
      let bodyEnded = false;
      const waiting: Array<() => void> = [];
      stream.on('end', () => ((bodyEnded = true), waiting.splice(0).forEach((listener) => listener())));
      serve(String(headers[':path']), {
        read: () => stream.resume(),
        head: () => stream.respond({ ':status': 200, 'content-type': 'text/plain' }),
        write: (text) => stream.write(text),
        end: (text) => stream.end(text),
        onBodyEnd: (listener) => (bodyEnded ? listener() : waiting.push(listener)),
      });
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(backend, {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      backend.releaseHeld();
      if ('closeAllConnections' in server) server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A raw HTTP/1.1 client connection to the gateway that collects what it receives. */
function rawClient(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, received: () => text, closed };
}

describe.each([{ protocol: 'http' as const }, { protocol: 'h2c' as const }])("p2c-ewma's latency sample of an $protocol upstream blames only the upstream", ({ protocol }) => {
  const services = ['queue', 'upload', 'leave'] as const;
  const backends = new Map<string, Backend>();
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const instance = async (service: string) => (await admin.services()).find((candidate) => candidate.name === service)!.instances[0]!;

  beforeAll(async () => {
    for (const service of services) backends.set(service, await startBackend(protocol));
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
${services.map((service) => `  ${service}: { protocol: ${protocol}, instances: ["${backends.get(service)!.address}"], balancer: p2c-ewma, healthCheck: false, outlierDetection: false, retries: false, concurrency: { maxConnections: 1 }, timeouts: { connect: 20s, headers: 20s } }`).join('\n')}
routes:
${services.map((service) => `  - { path: /${service}, service: ${service}, stripPrefix: true }`).join('\n')}
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).filter((service) => service.instances.length === 1).length === services.length, { message: 'every service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([...backends.values()].map((backend) => backend.close()));
  });

  it("leaves out the wait in the gateway's own queue for the instance's one connection", async () => {
    const backend = backends.get('queue')!;
    // The first request takes the one connection (or stream) and keeps it: its head came, its body is held.
    const first = rawClient(gateway.port);
    first.socket.write('GET /queue/hold HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    await waitFor(() => first.received().includes('first'), { message: 'the held answer to start' });
    // The second waits in the gateway for that connection: picked (in flight), not sent.
    const second = rawClient(gateway.port);
    second.socket.write('GET /queue/ HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    await waitFor(async () => (await instance('queue')).inFlight === 2, { message: 'the second request to be picked' });
    expect(backend.arrivals).toBe(1);
    const queuedAt = performance.now();
    // The scenario, not a wait for something: the second request stays queued that long at least.
    await delay(HOLD_MS);
    const queuedMs = performance.now() - queuedAt;
    backend.releaseHeld();
    await Promise.all([first.closed, second.closed]);
    expect(second.received(), await logOf(gateway.process)).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n[^]*ok/);
    expect(backend.arrivals).toBe(2);
    const after = await waitFor(async () => {
      const view = await instance('queue');
      return view.inFlight === 0 ? view : undefined;
    }, { message: 'both requests to be reported' });
    // Sampled from the queue's start, the second request's latency would be at least queuedMs.
    expect(after.latencyMs).not.toBeNull();
    expect(after.latencyMs!).toBeLessThan(queuedMs);
  }, 60_000);

  it('counts the time the instance leaves a whole upload unread, though the gateway has the body only then', async () => {
    const backend = backends.get('upload')!;
    const client = rawClient(gateway.port);
    client.socket.write(`POST /upload/slow-reader HTTP/1.1\r\nhost: gateway\r\ncontent-length: ${UPLOAD_BYTES}\r\nconnection: close\r\n\r\n`);
    // The client sends its whole body at once: any wait on it is the instance's.
    client.socket.write(Buffer.alloc(UPLOAD_BYTES, 'x'));
    await client.closed;
    expect(client.received(), await logOf(gateway.process)).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n[^]*ok/);
    const after = await waitFor(async () => {
      const view = await instance('upload');
      return view.inFlight === 0 ? view : undefined;
    }, { message: 'the upload to be reported' });
    // The instance answered heldMs or more after the request reached it; a sample started at the
    // end of the body the gateway read (held back by the instance's reading) would leave that out.
    expect(after.latencyMs).not.toBeNull();
    expect(after.latencyMs!).toBeGreaterThanOrEqual(backend.heldMs! - 1);
  }, 60_000);

  it('folds the sample in at the head, and keeps it when the client leaves during the body', async () => {
    const client = rawClient(gateway.port);
    const sentAt = performance.now();
    client.socket.write('GET /leave/hold HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    await waitFor(() => client.received().includes('first'), { message: 'the held answer to start' });
    const headMs = performance.now() - sentAt;
    // The body is held: the request is in flight, and its sample is in already.
    const during = await waitFor(async () => {
      const view = await instance('leave');
      // 0 until the instance's first sample (an estimate without history).
      return (view.latencyMs ?? 0) > 0 ? view : undefined;
    }, { message: 'the sample to be folded in at the head', timeoutMs: 5_000 });
    expect(during.inFlight).toBe(1);
    expect(during.latencyMs!).toBeLessThanOrEqual(headMs);
    client.socket.destroy();
    const after = await waitFor(async () => {
      const view = await instance('leave');
      return view.inFlight === 0 ? view : undefined;
    }, { message: 'the cancelled request to be reported' });
    expect(after.latencyMs).toBe(during.latencyMs);
    expect(after.errors).toBe(0);
    backends.get('leave')!.releaseHeld();
  }, 60_000);
});

describe("p2c-ewma's latency sample of a failing answer", () => {
  let backend: HttpServer;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const instance = async (service: string) => (await admin.services()).find((candidate) => candidate.name === service)!.instances[0]!;

  beforeAll(async () => {
    // A real backend on port 0 that answers a 503 head and a first chunk at once, and holds the rest of its body.
    backend = createHttpServer((_request, response) => {
      response.writeHead(503, { 'content-type': 'text/plain' });
      response.write('first');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  failing: { protocol: http, instances: ["${address}"], balancer: p2c-ewma, healthCheck: false, outlierDetection: false, retries: false }
routes:
  - { path: /failing, service: failing, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).some((service) => service.name === 'failing' && service.instances.length === 1), { message: 'the service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    backend?.closeAllConnections();
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
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
