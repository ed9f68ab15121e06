// An instance whose connect timed out is not tried again for the same connection or request (Envoy's
// previous_hosts, nginx's proxy_next_upstream): with one instance that never answers a SYN (a listener whose accept queue is full), a tcp
// connection and an HTTP request end after one attempt, not after attempts x timeouts.connect.
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, refusingPort, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const CONNECT_MS = 400;

/**
 * A real listener that never accepts (python's listen(0)), its one-slot accept queue filled by one
 * connection: Linux drops the SYNs that follow, so a connect to it can only time out.
 */
async function startBlackhole(): Promise<{ address: string; stop: () => void }> {
  const listener = spawn('python3', ['-c', "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(3600)"]);
  const port = await new Promise<number>((resolve) => listener.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim()))));
  const fillers: Socket[] = [];
  // Connects until one stays pending: the queue is then full.
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }).on('error', () => undefined);
        fillers.push(socket);
        const timer = setTimeout(() => resolve(true), 300);
        socket.once('connect', () => (clearTimeout(timer), resolve(false)));
      }),
    { timeoutMs: 10_000, message: 'the blackhole\'s accept queue to fill' },
  );
  return { address: `127.0.0.1:${port}`, stop: () => (fillers.forEach((socket) => socket.destroy()), listener.kill()) };
}

describe('a connect timeout on the one instance', () => {
  let gateway: GatewayProcess;
  let blackhole: { address: string; stop: () => void };
  let refusing: string;

  beforeAll(async () => {
    blackhole = await startBlackhole();
    refusing = `127.0.0.1:${await refusingPort()}`;
    gateway = await startGateway(`
accessLog: true
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  db: { listen: "127.0.0.1:{{port:db}}", protocol: tcp, service: hole }
  pair: { listen: "127.0.0.1:{{port:pair}}", protocol: tcp, service: pair }
admin: 127.0.0.1:{{adminPort}}
services:
  hole: { instances: ["${blackhole.address}"], healthCheck: false, outlierDetection: false, timeouts: { connect: ${CONNECT_MS}ms }, retries: { attempts: 3 } }
  pair: { instances: ["${blackhole.address}", "${refusing}"], balancer: round-robin, healthCheck: false, outlierDetection: false, timeouts: { connect: ${CONNECT_MS}ms }, retries: { attempts: 3 } }
routes:
  - { path: /pair/one, service: pair, retries: false }
  - { path: /pair, service: pair }
  - { path: /, service: hole }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    blackhole?.stop();
  });

  const logLines = async () =>
    (await readFile(gateway.process.logFile, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('closes a tcp connection after one attempt, logged as connect-timeout with attempts 1', async () => {
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gateway.ports.db! });
      socket.on('error', () => undefined).once('close', () => resolve());
      setTimeout(() => reject(new Error('the connection still open after 10 s')), 10_000).unref();
    });
    // One timeout, not three in turn: told by the line's attempts, not by the time it took (a loaded
    // machine stretches one 400 ms timeout past three's 1,200 ms as easily as it shortens nothing).
    const line = await waitFor(async () => (await logLines()).find((entry) => entry.protocol === 'tcp' && entry.service === 'hole' && 'attempts' in entry), { timeoutMs: 10_000, message: 'the tcp access log line' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    expect(line).toMatchObject({ service: 'hole', upstream: blackhole.address, attempts: 1, errorClass: 'connect-timeout' });
  });

  it('answers an HTTP request 504 after one attempt, logged with attempts 1', async () => {
    const answer = await sendRequest(gateway.port, '/once');
    expect(answer.status).toBe(504);
    const line = await waitFor(async () => (await logLines()).find((entry) => entry.path === '/once'), { timeoutMs: 10_000, message: 'the access log line of /once' });
    expect(line).toMatchObject({ service: 'hole', upstream: blackhole.address, attempts: 1, errorClass: 'connect-timeout', status: 504 });
  });

  // Once both were tried, the third attempt repeats the refusing instance, never the timed-out one:
  // the balancer's own choice among both ended the request after two attempts whenever it fell on the blackhole.
  // Round-robin falls on it there only when the first attempt went to the refusing instance (from the
  // blackhole first, the picks of a connection or request are even in number and its third attempt
  // lands on the refusing one whatever the fix), and its cursor starts at random: so each connection
  // and request starts on the refusing instance, put next by requests of one attempt (/pair/one),
  // whose answer tells where the cursor stood (504 from the blackhole, 502 from the refusing one).
  it('makes every attempt of a tcp connection and an HTTP request, the third on the refusing instance, when the other timed out', async () => {
    const refusingNext = async () => {
      if ((await sendRequest(gateway.port, '/pair/one')).status === 502) expect((await sendRequest(gateway.port, '/pair/one')).status).toBe(504);
    };
    const connections = 4;
    for (let connection = 0; connection < connections; connection += 1) {
      await refusingNext();
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: gateway.ports.pair! });
        socket.on('error', () => undefined).once('close', () => resolve());
        setTimeout(() => reject(new Error('the connection still open after 10 s')), 10_000).unref();
      });
      await refusingNext();
      expect((await sendRequest(gateway.port, `/pair/${connection}`)).status).toBe(502);
    }
    const lines = await waitFor(async () => {
      const found = (await logLines()).filter((entry) => entry.service === 'pair' && 'attempts' in entry && entry.path !== '/pair/one');
      return found.length === 2 * connections ? found : undefined;
    }, { timeoutMs: 10_000, message: 'the access log lines of the pair service' });
    for (const line of lines) expect(line).toMatchObject({ attempts: 3, upstream: refusing, errorClass: 'connect-refused' });
  });
});
