// An instance whose connect timed out is not tried again for the same connection or request (Envoy's
// previous_hosts, nginx's proxy_next_upstream): with one instance that never answers a SYN (a listener whose accept queue is full), a tcp
// connection and an HTTP request end after one attempt, not after attempts x timeouts.connect.
// A tcp connection's retry after a connect timeout hashes a salted key (consistent-hash), which the
// last test pins against the gateway's own ring.
import { spawn } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
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

/** A tcp backend that writes its `name` to each connection and closes it. */
async function startNamed(name: string, servers: Server[]): Promise<string> {
  const server = createServer((socket) => socket.end(name));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('a connect timeout on the one instance', () => {
  let gateway: GatewayProcess;
  let blackhole: { address: string; stop: () => void };
  let refusing: string;
  const servers: Server[] = [];
  const named: string[] = [];

  beforeAll(async () => {
    blackhole = await startBlackhole();
    refusing = `127.0.0.1:${await refusingPort()}`;
    for (const name of ['g0', 'g1', 'g2']) named.push(await startNamed(name, servers));
    const ringInstances = (addresses: string[], ids: string[]) => addresses.map((address, index) => `{ host: 127.0.0.1, port: ${address.split(':')[1]}, id: ${ids[index]} }`).join(', ');
    gateway = await startGateway(`
accessLog: true
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  db: { listen: "127.0.0.1:{{port:db}}", protocol: tcp, service: hole }
  pair: { listen: "127.0.0.1:{{port:pair}}", protocol: tcp, service: pair }
  ring: { listen: "127.0.0.1:{{port:ring}}", protocol: tcp, service: ring }
admin: 127.0.0.1:{{adminPort}}
services:
  hole: { instances: ["${blackhole.address}"], healthCheck: false, outlierDetection: false, timeouts: { connect: ${CONNECT_MS}ms }, retries: { attempts: 3 } }
  pair: { instances: ["${blackhole.address}", "${refusing}"], balancer: round-robin, healthCheck: false, outlierDetection: false, timeouts: { connect: ${CONNECT_MS}ms }, retries: { attempts: 3 } }
  ring: { instances: [${ringInstances([blackhole.address, ...named], ['hole', 'g0', 'g1', 'g2'])}], balancer: consistent-hash, healthCheck: false, outlierDetection: false, timeouts: { connect: ${CONNECT_MS}ms }, retries: { attempts: 2 } }
  ring-rest: { instances: [${ringInstances(named, ['g0', 'g1', 'g2'])}], balancer: consistent-hash, healthCheck: false, outlierDetection: false }
routes:
  - { path: /ring, service: ring, retries: false }
  - { path: /ring-rest, service: ring-rest, retries: false }
  - { path: /pair/one, service: pair, retries: false }
  - { path: /pair, service: pair }
  - { path: /, service: hole }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    blackhole?.stop();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
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

  // A retried connect hashes `<client ip>#1`, so consistent-hash starts it at another ring position
  // (the member that key owns), not at the next owner clockwise of the client's own (where the ring
  // walks past the member tried): the clients of an instance that stops answering spread over the
  // others instead of all landing on its neighbours. The member each key owns is the gateway's own
  // answer (explain peeks the service's ring for a client IP); `ring-rest` is the same ring without
  // the blackhole, so its owner of the bare IP is where the walk past the blackhole ends.
  it("sends a tcp connection's retry after a connect timeout to the member its salted key owns, not the blackhole's neighbour on the ring", async () => {
    const owner = async (path: string, clientIp: string) => {
      const response = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?${new URLSearchParams({ path, clientIp })}`);
      return ((await response.json()) as { pick: { id: string } | null }).pick?.id;
    };
    // A client address whose own key the blackhole owns, and whose salted key names another member than the walk would.
    let found: { clientIp: string; salted: string } | undefined;
    for (let host = 2; host < 255 && found === undefined; host += 1) {
      const clientIp = `127.0.0.${host}`;
      if ((await owner('/ring', clientIp)) !== 'hole') continue;
      const salted = await owner('/ring', `${clientIp}#1`);
      if (salted !== undefined && salted !== 'hole' && salted !== (await owner('/ring-rest', clientIp))) found = { clientIp, salted };
    }
    expect(found, 'a client address of 127.0.0.0/24 the test can use').toBeDefined();
    const { clientIp, salted } = found!;
    const served = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect({ host: '127.0.0.1', port: gateway.ports.ring!, localAddress: clientIp });
      socket.on('data', (chunk: Buffer) => chunks.push(chunk)).on('error', reject).once('close', () => resolve(Buffer.concat(chunks).toString()));
      setTimeout(() => reject(new Error('the connection still open after 10 s')), 10_000).unref();
    });
    expect(served).toBe(salted);
    const line = await waitFor(async () => (await logLines()).find((entry) => entry.service === 'ring' && entry.clientIp === clientIp && 'attempts' in entry), { timeoutMs: 10_000, message: 'the access log line of the ring connection' });
    expect(line).toMatchObject({ attempts: 2, upstream: named[['g0', 'g1', 'g2'].indexOf(salted)] });
  });
});
