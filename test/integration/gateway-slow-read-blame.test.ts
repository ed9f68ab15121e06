import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants, createServer as createHttp2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** A send timeout (nginx's `send_timeout`, Go's `WriteTimeout`) above the gateway's 1 s hold that excuses a break: a client that reads nothing for it gets the answer cut. */
const SEND_TIMEOUT_MS = 1_500;
/** A send timeout below that hold: the gateway holds the answer still for the client for less than it takes to excuse a break. */
const SHORT_SEND_TIMEOUT_MS = 50;
/** A body much larger than the socket buffers between the upstream and the client, so that a client that reads nothing stalls the upstream. */
const LARGE_BODY = 200_000_000;
/** How many answers a blamed scenario may ask for before the gateway must have blamed one (see `expectBlamed`). */
const BLAME_ATTEMPTS = 3;
/** What an upstream that dies mid-answer sends of its body before it goes. */
const SENT_BEFORE_DYING = 256 * 1024;

/**
 * An upstream, HTTP/1.1 or h2c, with a send timeout: under `/bytes/<ms>/<name>` it streams
 * `LARGE_BODY` bytes and closes the connection (HTTP/1.1) or resets the stream (HTTP/2, CANCEL) once
 * it could write nothing for `<ms>`, as nginx and Go servers do; under `/cut/<name>` it announces a
 * megabyte, sends `SENT_BEFORE_DYING` of it and closes (resets with INTERNAL_ERROR), as a crashing
 * one would, whoever reads; under `/garbled/<ms>/<name>` (HTTP/1.1) it streams a chunked body and
 * where its send timeout would close, writes a chunk size that is none, then closes; anything else
 * it answers `ok`. `timedOut(name)` resolves when the send
 * timeout of `<name>` fired.
 */
interface Upstream {
  readonly port: number;
  timedOut(name: string): Promise<void>;
  close(): Promise<void>;
}

/** One body being sent: `write` a chunk (false when the peer's window or buffer is full), `drained` once more may go. */
interface BodySink {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
  end(): void;
}

/** Writes `total` bytes to `sink` with back-pressure. */
function pump(sink: BodySink, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 97);
  let sent = 0;
  const more = (): void => {
    while (sent < total) {
      const size = Math.min(chunk.length, total - sent);
      sent += size;
      if (!sink.write(chunk.subarray(0, size))) return void sink.once('drain', more);
    }
    sink.end();
  };
  more();
}

async function startUpstream(protocol: 'http' | 'h2c'): Promise<Upstream> {
  const firings = new Map<string, { fired: Promise<void>; fire: () => void }>();
  const firing = (name: string) => {
    let found = firings.get(name);
    if (found === undefined) {
      let fire!: () => void;
      const fired = new Promise<void>((resolve) => (fire = resolve));
      firings.set(name, (found = { fired, fire }));
    }
    return found;
  };
  const route = (path: string): { kind: string; ms: number; name: string } => {
    const [, kind = '', ms = '0', name = ''] = /^\/(bytes|cut|garbled)\/(?:(\d+)\/)?([\w-]+)$/.exec(path) ?? [];
    return { kind, ms: Number(ms), name };
  };
  let server: Server;
  if (protocol === 'http') {
    server = createHttpServer((request: IncomingMessage, response: ServerResponse) => {
      request.resume();
      const { kind, ms, name } = route(request.url ?? '');
      if (kind === 'bytes') {
        response.socket!.setTimeout(ms, () => {
          firing(name).fire();
          response.socket!.destroy();
        });
        response.writeHead(200, { 'content-length': String(LARGE_BODY) });
        return pump(response, LARGE_BODY);
      }
      if (kind === 'garbled') {
        // Its answer turns malformed where the client stopped reading it: a chunk size that is none, then its
        // close (the response's own listener, so that Node's server does not destroy the socket at its timeout).
        response.setTimeout(ms, () => {
          firing(name).fire();
          response.socket!.end('zz\r\n');
        });
        response.writeHead(200, { 'transfer-encoding': 'chunked' });
        return pump(response, LARGE_BODY);
      }
      if (kind !== 'cut') return void response.end('ok');
      response.writeHead(200, { 'content-length': String(4 * SENT_BEFORE_DYING) });
      response.write(Buffer.alloc(SENT_BEFORE_DYING, 98), () => response.socket!.destroy());
    });
  } else {
    const http2 = createHttp2Server();
    http2.on('session', (session) => session.on('error', () => undefined));
    http2.on('stream', (stream: ServerHttp2Stream, headers) => {
      stream.on('error', () => undefined);
      const { kind, ms, name } = route(String(headers[':path']));
      if (kind === 'bytes') {
        stream.setTimeout(ms, () => {
          firing(name).fire();
          stream.close(constants.NGHTTP2_CANCEL);
        });
        stream.respond({ ':status': 200, 'content-length': String(LARGE_BODY) });
        return pump(stream, LARGE_BODY);
      }
      if (kind !== 'cut') {
        stream.respond({ ':status': 200 });
        return void stream.end('ok');
      }
      stream.respond({ ':status': 200, 'content-length': String(4 * SENT_BEFORE_DYING) });
      stream.write(Buffer.alloc(SENT_BEFORE_DYING, 98), () => stream.close(constants.NGHTTP2_INTERNAL_ERROR));
    });
    server = http2 as unknown as Server;
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    timedOut: (name) => firing(name).fired,
    close: () =>
      new Promise<void>((resolve) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * A raw HTTP/1.1 client of the gateway asking for `path` that reads nothing until `read()` is called,
 * then everything; `closed` resolves with the bytes it read once its connection closed.
 */
function rawClient(port: number, path: string): { read(): void; closed: Promise<number> } {
  const socket = connect(port, '127.0.0.1');
  socket.pause();
  socket.on('error', () => undefined);
  let bytes = 0;
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(bytes)));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: gateway\r\n\r\n`);
  return {
    read() {
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.resume();
    },
    closed,
  };
}

// House rule: only the guilty are blamed. An upstream with a send timeout closes its connection (or
// resets its stream) when the gateway stops reading it, and the gateway stops because the client
// does: a break of that answer is the client's (`client-slow-read`), as a client that leaves is
// (`cancelled`), and no instance is ejected, no breaker fails, no upstream error is counted. One that
// dies mid-answer while its client reads, or holds it for less than a send timeout takes, is blamed.
describe.each([{ protocol: 'http' as const }, { protocol: 'h2c' as const }])('a client that stops reading an answer from an $protocol upstream with a send timeout', ({ protocol }) => {
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const scenarios = ['slow', 'short', 'dying', 'garbled'];

  beforeAll(async () => {
    upstream = await startUpstream(protocol);
    // One failure ejects an instance, and opens its service's breaker; a service per scenario.
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
listen: 127.0.0.1:{{port}}
defaults:
  retries: false
  panicThreshold: 0
  outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }
  circuitBreaker: { requestVolumeThreshold: 1, errorPercentThreshold: 1, sleepWindow: 60s }
services:
${scenarios.map((scenario) => `  ${scenario}: { protocol: ${protocol}, instances: [{ id: only, host: 127.0.0.1, port: ${upstream.port} }] }`).join('\n')}
routes:
${scenarios.map((scenario) => `  - { path: /${scenario}, service: ${scenario}, stripPrefix: true }`).join('\n')}
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await upstream?.close();
  });

  /** Runs `check`, with the gateway's log on a failure. */
  async function withLog(check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  }

  /** How `service` and its one instance stand: its errors, health, breaker (the failures of its window while closed) and `switchboard_upstream_errors_total` by class. */
  async function blame(service: string): Promise<{ errors: number | undefined; health: string | undefined; breaker: { state: string; failures: number } | undefined; upstreamErrors: Record<string, number> }> {
    const instance = await admin.instance(service, 'only');
    const breakers = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string; state: string; failures: number }[] }[] };
    const breaker = breakers.workers.flatMap((worker) => worker.breakers).find((candidate) => candidate.service === service);
    const samples = (await admin.metrics()).get('switchboard_upstream_errors_total')?.samples ?? [];
    return {
      errors: instance?.errors,
      health: instance?.health.state,
      breaker: breaker && { state: breaker.state, failures: breaker.failures },
      upstreamErrors: Object.fromEntries(samples.filter((sample) => sample.labels.service === service).map((sample) => [sample.labels.class, sample.value])),
    };
  }

  /**
   * Asks `attempt` for an answer cut with a short hold or none, at a fresh path each time, until the
   * gateway blames it (`reset-after-headers`), at most `BLAME_ATTEMPTS` times; then expects the
   * instance of `service` blamed: ejected, its breaker open, the error counted. The gateway measures a
   * hold up to the break it sees, so a loaded machine that stalls it or the client for a second
   * stretches a short hold into one that excuses: such an attempt, `client-slow-read`, blames nothing
   * and leaves the service as it was for the next one, while a gateway that excuses short holds
   * excuses them all.
   */
  async function expectBlamed(service: string, attempt: (name: string) => Promise<string>): Promise<void> {
    let line: Record<string, unknown> = {};
    for (let index = 0; index < BLAME_ATTEMPTS && line.errorClass !== 'reset-after-headers'; index += 1) {
      line = await accessLineOf(gateway.process, await attempt(`${service}-${index}`));
      expect(line).toMatchObject({ status: 200, errorClass: expect.stringMatching(/^(reset-after-headers|client-slow-read)$/) });
    }
    expect(line).toMatchObject({ status: 200, errorClass: 'reset-after-headers' });
    await waitFor(async () => (await blame(service)).health === 'unhealthy', { message: 'the instance to be ejected' });
    expect(await blame(service)).toMatchObject({ errors: 1, health: 'unhealthy', breaker: { state: 'open' }, upstreamErrors: { 'reset-after-headers': 1 } });
  }

  /**
   * Asks for `path` (named `name` at the upstream) without reading: the gateway stops reading the
   * upstream for the client, and the upstream, stalled, closes at its send timeout; then reads the
   * rest until the gateway closes the connection.
   */
  async function readAfterSendTimeout(path: string, name: string): Promise<void> {
    const client = rawClient(gateway.port, path);
    await upstream.timedOut(name);
    client.read();
    await client.closed;
  }

  /** A plain request to `service` once the test is done: 200 while its instance serves, 503 once ejected or its breaker open. */
  async function statusAfter(service: string): Promise<number> {
    const answer = await fetch(`${gateway.url}/${service}/ok`);
    await answer.arrayBuffer();
    return answer.status;
  }

  it('blames no instance for the answer its send timeout cut while the client held it still, read on once the client reads again', async () => {
    await withLog(async () => {
      const path = `/slow/bytes/${SEND_TIMEOUT_MS}/held`;
      await readAfterSendTimeout(path, 'held');
      expect(await accessLineOf(gateway.process, path)).toMatchObject({ status: 200, errorClass: 'client-slow-read' });
      expect(await blame('slow')).toEqual({ errors: 0, health: 'healthy', breaker: { state: 'closed', failures: 0 }, upstreamErrors: {} });
      // The only instance still serves (its breaker would answer 503, its ejection 503 too).
      expect(await statusAfter('slow')).toBe(200);
    });
  });

  it('blames the instance whose send timeout, shorter than a hold that excuses, cut the answer its client read again at once', async () => {
    await withLog(async () => {
      await expectBlamed('short', async (name) => {
        const path = `/short/bytes/${SHORT_SEND_TIMEOUT_MS}/${name}`;
        await readAfterSendTimeout(path, name);
        return path;
      });
    });
  });

  it.runIf(protocol === 'http')('blames the instance whose answer turns malformed while its client held it still: a send timeout closes, it does not garble', async () => {
    await withLog(async () => {
      await expectBlamed('garbled', async (name) => {
        const path = `/garbled/garbled/${SEND_TIMEOUT_MS}/${name}`;
        await readAfterSendTimeout(path, name);
        return path;
      });
    });
  });

  it('blames the instance that dies in the middle of an answer its client reads', async () => {
    await withLog(async () => {
      await expectBlamed('dying', async (name) => {
        const path = `/dying/cut/${name}`;
        const client = rawClient(gateway.port, path);
        client.read();
        expect(await client.closed).toBeGreaterThan(0);
        return path;
      });
      expect(await statusAfter('dying')).toBe(503);
    });
  });
});
