import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import { acceptsConnections, logOf, REPO_ROOT, startBackend, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const gateways: GatewayProcess[] = [];
const closers: Array<() => void> = [];

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((gateway) => gateway.process.kill()));
  for (const close of closers.splice(0)) close();
});

const WS_HANDSHAKE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

function configFor(port: number): string {
  return `
listen: 127.0.0.1:{{port}}
admin: false
services:
  one: { instances: [127.0.0.1:${port}], outlierDetection: false }
routes:
  - { path: /, service: one }
`;
}

describe('gateway lifecycle', () => {
  it('retries on a new connection when the backend closed the reused keep-alive socket', async () => {
    // A real HTTP/1.1 peer that answers the first request of each connection and closes the
    // connection, without a word, when a second request arrives on it.
    let connections = 0;
    const backend = createTcpServer((socket) => {
      connections += 1;
      let requests = 0;
      socket.on('data', (chunk) => {
        if (!chunk.toString().includes('\r\n\r\n')) return;
        requests += 1;
        if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else socket.destroy();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const first = await fetch(`${gateway.url}/a`);
    expect([first.status, await first.text()]).toEqual([200, 'ok']);
    const second = await fetch(`${gateway.url}/b`);
    expect([second.status, await second.text()]).toEqual([200, 'ok']);
    // The second request went out on the pooled socket, met the close, and was sent again on a new one.
    expect(connections).toBe(2);
    expect(await logOf(gateway.process)).toMatch(/retrying on another instance/);
  });

  it('drains on SIGTERM: stops accepting, finishes the request in flight, then exits 0', async () => {
    const waiting: ServerResponse[] = [];
    const backend = createHttpServer((request, response) => {
      request.resume();
      waiting.push(response);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const inFlight = fetch(`${gateway.url}/slow`).then(async (response) => [response.status, await response.text()]);
    await waitFor(() => waiting.length === 1, { message: 'the request to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    expect(gateway.process.running).toBe(true);

    waiting[0]!.end('finished');
    expect(await inFlight).toEqual([200, 'finished']);
    const exit = await gateway.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
  });

  it('drains a keep-alive connection after its last answer: every answer before it arrives, and no request pipelined behind it reaches the upstream', async () => {
    const paths: string[] = [];
    const waiting: ServerResponse[] = [];
    const backend = createHttpServer((request, response) => {
      paths.push(request.url ?? '');
      request.resume();
      waiting.push(response);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const client = connect(gateway.port, '127.0.0.1');
    let answer = '';
    client.on('data', (chunk) => (answer += chunk.toString()));
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => waiting.length === 2, { timeoutMs: 5_000, message: 'both pipelined requests to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    // Sent once the drain has marked the answer to /second as the connection's last.
    client.write('GET /third HTTP/1.1\r\nHost: a\r\n\r\nPOST /fourth HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi');
    const skipped = async () => (await logOf(gateway.process)).split('closes its connection is not served').length - 1;
    await waitFor(async () => paths.length === 4 || (await skipped()) === 2, { timeoutMs: 5_000, message: 'the gateway to read the requests sent while draining' });
    waiting[0]!.end('one');
    waiting[1]!.end('two');
    await closed;
    const heads = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) [^]*?\r\n\r\n/g)];
    expect(heads.map(([head, status]) => [status, /^connection: close\r$/im.test(head)])).toEqual([
      ['200', false],
      ['200', true],
    ]);
    expect(answer).toMatch(/one[^]*two$/);
    expect(paths).toEqual(['/first', '/second']);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
  });

  it('answers a WebSocket upgrade pipelined while draining with a logged 503 once the answer before it is whole, and passes it to no upstream', async () => {
    const streams: ServerResponse[] = [];
    let upgrades = 0;
    const backend = createHttpServer((request, response) => {
      request.resume();
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('streamed-');
      streams.push(response);
    });
    backend.on('upgrade', (_request, socket) => {
      upgrades += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const client = connect(gateway.port, '127.0.0.1');
    let answer = '';
    let closed = false;
    client.on('data', (chunk) => (answer += chunk.toString()));
    client.on('error', () => undefined);
    client.on('close', () => (closed = true));
    client.write('GET /stream HTTP/1.1\r\nHost: a\r\n\r\n');
    // Its head already sent, the streamed answer keeps the connection open through the drain.
    await waitFor(() => answer.includes('streamed-'), { timeoutMs: 5_000, message: 'the head and first bytes of the streamed answer' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    client.write(`GET /ws HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    await waitFor(async () => closed || (await logOf(gateway.process)).includes('refuses waits for the answers before it'), {
      timeoutMs: 5_000,
      message: 'the gateway to read the upgrade',
    });
    streams[0]!.end('rest');
    await waitFor(() => closed, { timeoutMs: 10_000, message: 'the gateway to close the connection' });
    expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*streamed-[^]*rest[^]*\r\n0\r\n\r\nHTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n\r\n\{"error":"draining","status":503,"message":"Service Unavailable"\}$/);
    expect(upgrades).toBe(0);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
    const lines = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('"errorClass":"draining"'));
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([expect.objectContaining({ status: 503, method: 'GET', path: '/ws', bytes: 65 })]);
  });

  it('refuses to start on an invalid file, naming the file, the key, the line and the reason', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'sb-bad-config-')), 'gateway.yaml');
    await writeFile(path, 'listen: 127.0.0.1:0\nroutes:\n  - { path: /a, servce: a }\n');
    const run = spawnSync(process.execPath, ['bin/switchboard.js', '--config', path], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${path}: routes.0.servce (line 3): unknown field "servce"`);
  });

  it('closes open WebSockets at the drain deadline, so SIGTERM always ends the process', async () => {
    const backend = await startBackend({ name: 'ws' });
    closers.push(() => void backend.process.kill());
    const gateway = await startGateway(`${configFor(backend.port)}\nshutdown: { drainTimeout: 1s }\n`);
    gateways.push(gateway);
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws`);
    const closed = new Promise<number>((resolve) => socket.addEventListener('close', () => resolve(Date.now())));
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
    });
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    const exit = await gateway.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(5_000);
    // Open until the deadline (1 s), not cut at the signal: a WebSocket gets the drain time too.
    expect((await closed) - signalledAt).toBeGreaterThanOrEqual(900);
  });
});
