import { readFile } from 'node:fs/promises';
import { connect, constants, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { echoClient, grpcBackendCommand, unary } from '../harness/grpc.ts';
import { freePort, logOf, startAgent, startGateway, startZooKeeper, waitFor, type GatewayProcess, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

/** The gateway's resident set size in bytes, from /proc/<pid>/status. */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** A raw HTTP/2 gRPC request (no grpc-js): what the gateway itself put on the wire, status line and all. */
function rawGrpcCall(port: number, path: string, headers: Record<string, string> = {}): Promise<{ headers: Record<string, unknown>; endedWithHeaders: boolean; trailers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let answer: Record<string, unknown> = {};
    let endedWithHeaders = false;
    let trailers: Record<string, unknown> = {};
    stream.on('response', (received, flags) => {
      answer = { ...received };
      endedWithHeaders = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (received) => (trailers = { ...received }));
    stream.on('error', reject);
    stream.resume();
    stream.on('close', () => {
      session.close();
      resolve({ headers: answer, endedWithHeaders, trailers });
    });
    // An empty message: 5-byte prefix, length 0.
    stream.end(Buffer.alloc(5));
  });
}

describe('gRPC through the gateway to grpc-js servers registered in ZooKeeper by switchboard-agent with protocol grpc', () => {
  let zk: ZooKeeperCluster;
  let gateway: GatewayProcess;
  const agents: ManagedProcess[] = [];
  let client: ReturnType<typeof echoClient>;
  const flakyPorts: Record<string, number> = {};
  // A real HTTP/2 server that takes every call and never answers, nor ends it at its grpc-timeout
  // (grpc-js servers do), so only the gateway can end the call; it records the grpc-timeout it got.
  let silent: Http2Server;
  const silentTimeouts: string[] = [];

  async function startGrpcAgent(service: string, name: string, health: string): Promise<number> {
    const port = await freePort();
    const agent = await startAgent([
      '--registry', `zk://${zk.connectString}/services`, '--service', service, '--port', String(port), '--id', name,
      '--protocol', 'grpc', '--health', health, '--interval', '200ms', '--rise', '1', '--', ...grpcBackendCommand(port, name),
    ]);
    agents.push(agent);
    return port;
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    silent = createServer();
    silent.on('stream', (_stream, headers) => silentTimeouts.push(String(headers['grpc-timeout'])));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
workers: 1
registries: [zk://${zk.connectString}/services]
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  # One failure that counts ejects it (panic still routes to it, as its only instance).
  silent: { instances: [{ host: 127.0.0.1, port: ${(silent.address() as AddressInfo).port}, protocol: grpc }], outlierDetection: { consecutiveErrors: 1 } }
  flaky.Echo: { healthCheck: { interval: 500ms, timeout: 400ms, unhealthyThreshold: 1, healthyThreshold: 1 } }
routes:
  - { grpcService: test.Echo, service: echo }
  # /flaky.Echo/<method> goes to the registry service flaky.Echo, path unchanged.
  - { namespace: grpc }
  - { path: /absent.Service/, service: absent }
  - { path: /silent.Service/, service: silent, timeouts: { headers: 1s } }
`);
    await Promise.all([startGrpcAgent('echo', 'grpc-1', 'grpc'), startGrpcAgent('flaky.Echo', 'flaky-a', 'tcp'), startGrpcAgent('flaky.Echo', 'flaky-b', 'tcp')]).then(([, a, b]) => {
      flakyPorts['flaky-a'] = a;
      flakyPorts['flaky-b'] = b;
    });
    client = echoClient(`127.0.0.1:${gateway.port}`);
    await waitFor(async () => (await unary(client, 'Echo', 'ready', 2_000)).code === 0, { timeoutMs: 30_000, message: 'the gRPC backend behind the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}\n${await logOf(agents[0]!)}`);
    });
  });

  afterAll(async () => {
    client?.close();
    await gateway?.process.stop();
    await Promise.all(agents.map((agent) => agent.stop()));
    await zk?.close();
    silent?.close();
  });

  it('a unary call returns the right message with the response headers and the custom trailers', async () => {
    const outcome = await unary(client, 'Echo', 'hello');
    expect(outcome).toMatchObject({ code: 0, value: 'grpc-1:hello' });
    expect(outcome.headers['x-backend']).toBe('grpc-1');
    expect(outcome.trailers['x-trailer']).toBe('grpc-1-trailer');
  });

  it('a non-OK status arrives with its grpc-message and custom trailers intact', async () => {
    const outcome = await unary(client, 'Echo', 'fail');
    expect(outcome.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(outcome.details).toBe('bad input: ü 100%');
    expect(outcome.trailers['x-trailer']).toBe('grpc-1-trailer');
  });

  it("an upstream's Trailers-Only answer (an unimplemented method) reaches the client as a status, not as a call without one", async () => {
    const outcome = await unary(client, 'Missing', '');
    expect(outcome.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(outcome.details).toContain('/test.Echo/Missing');
  });

  it('metrics and access log lines carry the gRPC service, method and status of each call', async () => {
    await unary(client, 'Echo', 'fail');
    await waitFor(async () => {
      const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
      return (sampleValue(metrics, 'switchboard_grpc_calls_total', { service: 'echo', grpc_service: 'test.Echo', grpc_method: 'Echo', grpc_code: '3' }) ?? 0) >= 1;
    }, { timeoutMs: 10_000, message: 'the INVALID_ARGUMENT call in switchboard_grpc_calls_total' });
    await waitFor(async () => (await logOf(gateway.process)).includes('"grpcService":"test.Echo","grpcMethod":"Echo","grpcStatus":3'), {
      timeoutMs: 10_000,
      message: 'an access log line with the gRPC call',
    });
  });

  it('server-streaming, client-streaming and bidi calls return the right messages', async () => {
    const streamed = await new Promise<string[]>((resolve, reject) => {
      const messages: string[] = [];
      const call = (client.Stream as (request: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('3x4'));
      call.on('data', (message: Buffer) => messages.push(message.toString()));
      call.on('error', reject);
      call.on('end', () => resolve(messages));
    });
    expect(streamed).toEqual(['aaaa', 'aaaa', 'aaaa']);

    const collected = await new Promise<string>((resolve, reject) => {
      const call = (client.Collect as (callback: (error: Error | null, value?: Buffer) => void) => grpc.ClientWritableStream<Buffer>)((error, value) =>
        error ? reject(error) : resolve(value!.toString()),
      );
      for (const part of ['one', 'two', 'three']) call.write(Buffer.from(part));
      call.end();
    });
    expect(collected).toBe('one,two,three');

    const chatted = await new Promise<string[]>((resolve, reject) => {
      const answers: string[] = [];
      const call = (client.Chat as () => grpc.ClientDuplexStream<Buffer, Buffer>)();
      // Each message is sent only after the answer to the one before: a true conversation.
      const words = ['ping', 'pong', 'done'];
      call.on('data', (message: Buffer) => {
        answers.push(message.toString());
        const next = words[answers.length];
        if (next) call.write(Buffer.from(next));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(answers));
      call.write(Buffer.from(words[0]!));
    });
    expect(chatted).toEqual(['PING', 'PONG', 'DONE']);
  });

  it('a 50 MB server stream flows with back-pressure: with the client paused the gateway RSS grows by less than 16 MB, over the whole stream by less than 64 MB', async () => {
    const pid = gateway.process.pid!;
    const before = await rssOf(pid);
    let peak = before;
    const sample = () => rssOf(pid).then((rss) => (peak = Math.max(peak, rss)), () => peak);
    const sampler = setInterval(() => void sample(), 25);
    let pausedPeak = 0;
    // 800 messages of 64 KiB = 52 MB. The client stops reading for 2 s after the first message:
    // without back-pressure the gateway would take in the whole stream meanwhile (measured: +44 MB).
    const received = await new Promise<number>((resolve, reject) => {
      let bytes = 0;
      const call = (client.Stream as (request: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('800x65536'));
      call.on('data', (message: Buffer) => {
        bytes += message.length;
        if (bytes !== message.length) return;
        call.pause();
        setTimeout(() => {
          void sample().then(() => {
            pausedPeak = peak;
            call.resume();
          });
        }, 2_000);
      });
      call.on('error', reject);
      call.on('end', () => resolve(bytes));
    }).finally(() => clearInterval(sampler));
    expect(received).toBe(800 * 65_536);
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    console.log(`gateway RSS ${mb(before)} MB before, +${mb(pausedPeak - before)} MB with the client paused, +${mb(peak - before)} MB at the peak of the whole stream`);
    expect(pausedPeak - before).toBeLessThan(16 * 2 ** 20);
    expect(peak - before).toBeLessThan(64 * 2 ** 20);
  });

  it("the gateway's own refusals are gRPC answers: HTTP 200, application/grpc, Trailers-Only with grpc-status and grpc-message", async () => {
    // grpc-js maps a bare HTTP 503 or 404 to the same codes, so the wire itself is checked here.
    const noInstance = await rawGrpcCall(gateway.port, '/absent.Service/Call');
    expect(noInstance.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14' });
    expect(noInstance.headers['grpc-message']).toMatch(/no registered instances/);
    expect(noInstance.endedWithHeaders).toBe(true);
    const noRoute = await rawGrpcCall(gateway.port, '/nothing.Here/Call');
    expect(noRoute.headers).toMatchObject({ ':status': 200, 'grpc-status': '12' });

    const viaClient = await unary(client, 'NoInstance', '');
    expect(viaClient.code).toBe(grpc.status.UNAVAILABLE);
    expect(viaClient.details).toMatch(/no registered instances/);
  });

  it('a hanging server and a 200 ms deadline end as DEADLINE_EXCEEDED, and the gateway enforces grpc-timeout by itself', async () => {
    const started = performance.now();
    const outcome = await unary(client, 'Hang', '', 200);
    expect(outcome.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(performance.now() - started).toBeLessThan(5_000);
    // A server that never ends the call and a client that does not end it at its deadline: the
    // gateway ends it at the 200 ms deadline (well before the route's 1 s headers timeout), and
    // passes on what is left of the deadline.
    const raw = await rawGrpcCall(gateway.port, '/silent.Service/Call', { 'grpc-timeout': '200m' });
    expect(raw.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '4' });
    expect(silentTimeouts).toHaveLength(1);
    expect(silentTimeouts[0]).toMatch(/^\d+m$/);
    expect(Number.parseInt(silentTimeouts[0]!, 10)).toBeLessThanOrEqual(200);
  });

  it('answers a malformed grpc-timeout itself with INTERNAL, so the caller\'s mistake never counts against the server', async () => {
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const echoInstance = async () => (await admin.services()).find((service) => service.name === 'echo')?.instances[0];
    const before = (await echoInstance())!;
    // 9 digits (the spec allows 8: grpc-js reads the last 8, a 0 s deadline, grpc-go fails it), a
    // unit that does not exist, no unit (grpc-js and grpc-go fail these with INTERNAL, which would
    // count as the server's 500).
    for (const value of ['100000000S', '5s', '200']) {
      const raw = await rawGrpcCall(gateway.port, '/test.Echo/Echo', { 'grpc-timeout': value });
      expect(raw.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '13' });
      expect(raw.headers['grpc-message']).toMatch(/malformed grpc-timeout/);
    }
    // A well-formed call after them reaches the server: had the three reached it, they would be in its counts by now.
    expect((await unary(client, 'Echo', 'after')).code).toBe(0);
    await waitFor(async () => (await echoInstance())!.requests >= before.requests + 1, { timeoutMs: 10_000, message: 'the well-formed call in the instance counts' });
    expect(await echoInstance()).toMatchObject({ requests: before.requests + 1, errors: before.errors });
  });

  it('a call its client cancels is cancelled at the server at once, not left to a timeout', async () => {
    const key = `cancel-${Date.now()}`;
    const hanging = async () => (await unary(client, 'Hanging', key)).value;
    // No deadline: only the client's cancel (or the route's 30 s headers timeout) ends it.
    const call = (client.Hang as (request: Buffer, callback: () => void) => grpc.ClientUnaryCall)(Buffer.from(key), () => undefined);
    await waitFor(async () => (await hanging()) === 'waiting', { timeoutMs: 10_000, message: 'the call to reach the server' });
    call.cancel();
    await waitFor(async () => (await hanging()) === 'cancelled', { timeoutMs: 10_000, message: 'the server to see the call cancelled' });
  });

  it("counts a call its own deadline ended not against the server, and one the gateway's headers timeout ended against it", async () => {
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const silentInstance = async () => (await admin.services()).find((service) => service.name === 'silent')?.instances[0];
    const before = (await silentInstance())!;
    expect(before.health.ejectedUntil).toBeNull();
    // Three calls whose 200 ms deadline passes long before the route's 1 s headers timeout.
    for (let call = 0; call < 3; call += 1) {
      const raw = await rawGrpcCall(gateway.port, '/silent.Service/Call', { 'grpc-timeout': '200m' });
      expect(raw.headers).toMatchObject({ ':status': 200, 'grpc-status': '4' });
    }
    await waitFor(async () => (await silentInstance())!.requests >= before.requests + 3, { timeoutMs: 10_000, message: 'the three calls in the instance counts' });
    // With consecutiveErrors 1, a single one counted would have ejected it.
    expect(await silentInstance()).toMatchObject({ errors: before.errors, health: { ejectedUntil: null } });
    await waitFor(async () => (await logOf(gateway.process)).includes('"errorClass":"deadline-exceeded"'), { timeoutMs: 10_000, message: 'deadline-exceeded in the access log' });
    // A call without a deadline: the route's own 1 s headers timeout ends it, the server's slowness by the gateway's measure.
    const timedOut = await rawGrpcCall(gateway.port, '/silent.Service/Call');
    expect(timedOut.headers).toMatchObject({ ':status': 200, 'grpc-status': '4' });
    await waitFor(async () => (await silentInstance())!.health.ejectedUntil !== null, { timeoutMs: 10_000, message: 'the silent server ejected after a headers timeout' });
    expect((await silentInstance())!.errors).toBe(before.errors + 1);
  });

  it('a server whose health service answers NOT_SERVING stops getting calls within the check interval', async () => {
    // Calls to flaky.Echo reach its registry service through the namespace: grpc route.
    const call = () => rawUnaryThroughFlaky(gateway.port);
    await waitFor(
      async () => {
        const seen = new Set<string>();
        for (let index = 0; index < 12; index += 1) seen.add(await call());
        return seen.has('flaky-a') && seen.has('flaky-b');
      },
      { timeoutMs: 30_000, message: 'both flaky instances to serve' },
    );
    const direct = echoClient(`127.0.0.1:${flakyPorts['flaky-b']}`);
    expect((await unary(direct, 'SetHealth', 'NOT_SERVING')).code).toBe(0);
    direct.close();
    const marked = performance.now();
    // Interval 500 ms, one failure takes it out; 5 s leaves room for a loaded machine.
    await waitFor(
      async () => {
        for (let index = 0; index < 12; index += 1) if ((await call()) !== 'flaky-a') return false;
        return true;
      },
      { timeoutMs: 5_000, message: 'flaky-b to stop getting calls' },
    );
    console.log(`NOT_SERVING instance out of rotation after ${Math.round(performance.now() - marked)} ms (check interval 500 ms)`);
  });
});

/** One unary `flaky.Echo/Echo` through the gateway on a raw HTTP/2 session; resolves with the instance name that answered. */
function rawUnaryThroughFlaky(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/flaky.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      const body = Buffer.concat(chunks);
      resolve(body.length > 5 ? body.subarray(5).toString().split(':')[0]! : 'no-answer');
    });
    const message = Buffer.from('who');
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    stream.end(frame);
  });
}
