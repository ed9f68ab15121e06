import { execFile } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import {
  acceptsConnections,
  logOf,
  makeCertificate,
  makeTempDir,
  startAgent,
  startGateway,
  startLocalRedis,
  startZooKeeper,
  waitFor,
  type GatewayProcess,
  type LocalRedis,
  type ManagedProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

const run = promisify(execFile);

/**
 * One RESP command on `socket`, resolved with the first reply line; rejects when the connection
 * fails or closes before a whole line (a tcp entry point may close with a plain FIN, which emits no 'error').
 */
function command(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const onClose = () => reject(new Error(`the connection closed before a reply to ${text} (got ${JSON.stringify(reply)})`));
    const onData = (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (!reply.includes('\r\n')) return;
      socket.off('data', onData).off('error', reject).off('close', onClose);
      resolve(reply.slice(0, reply.indexOf('\r\n')));
    };
    socket.on('data', onData).once('error', reject).once('close', onClose);
    socket.write(`${text}\r\n`);
  });
}

/** A fresh connection to `port` (from `localAddress` when given), resolved once connected. */
function open(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

/** PING on a new connection through the gateway: true for +PONG within 5 s, false for anything else. */
async function pingThrough(port: number): Promise<boolean> {
  const socket = await open(port).catch(() => undefined);
  if (!socket) return false;
  // Wall-clock, not socket.setTimeout: an idle timer measures silence, not "within 5 s".
  const deadline = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5_000);
  try {
    return (await command(socket, 'PING')) === '+PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(deadline);
    socket.destroy();
  }
}

/** Connections of `redis` named `name`, as its CLIENT LIST shows them. */
async function namedClients(redis: LocalRedis, name: string): Promise<number> {
  const client = new Redis({ host: redis.host, port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 5_000 });
  try {
    await client.connect();
    const list = (await client.call('CLIENT', 'LIST')) as string;
    return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
  } finally {
    client.disconnect();
  }
}

/**
 * One sample of the gateway's /metrics, read by line (the strict harness parser refuses the
 * `Nan` prom-client writes for an idle event-loop-lag mean); 0 when the series does not exist yet.
 */
async function metric(admin: AdminClient, name: string, labels: string): Promise<number> {
  const text = await (await admin.get('/metrics')).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** What the PROXY v2 test backend read at the start of a connection that carried a header. */
interface ProxyV2Header {
  command: number;
  family: number;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: string;
}

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/**
 * A backend that parses a PROXY protocol v2 header (HAProxy's proxy-protocol.txt, section 2.2) on
 * each connection, records it with the first payload bytes after it, and answers `+OK`. Connections
 * without a header (health probes) are ignored.
 */
async function startProxyV2Backend(): Promise<{ server: Server; port: number; headers: ProxyV2Header[] }> {
  const headers: ProxyV2Header[] = [];
  const server = createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 16 || !buffered.subarray(0, 12).equals(SIGNATURE)) return;
      const length = buffered.readUInt16BE(14);
      const payload = buffered.subarray(16 + length);
      if (buffered.length < 16 + length || !payload.includes('\r\n')) return;
      const ip = (offset: number) => [...buffered.subarray(offset, offset + 4)].join('.');
      headers.push({
        command: buffered[12]!,
        family: buffered[13]!,
        source: ip(16),
        destination: ip(20),
        sourcePort: buffered.readUInt16BE(24),
        destinationPort: buffered.readUInt16BE(26),
        payload: payload.toString('latin1'),
      });
      socket.end('+OK\r\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, headers };
}

describe('tcp entry points: Redis registered by agents, behind the gateway', () => {
  let zk: ZooKeeperCluster;
  let redisA: LocalRedis;
  let redisB: LocalRedis;
  let proxied: Awaited<ReturnType<typeof startProxyV2Backend>>;
  const agents: ManagedProcess[] = [];
  let gateway: GatewayProcess;
  let proxiedPort: number;
  let tlsPort: number;
  let ca: Buffer;
  let admin: AdminClient;

  const register = async (service: string, id: string, port: number) =>
    agents.push(await startAgent(['--registry', `zk://${zk.connectString}/services`, '--service', service, '--id', id, '--port', String(port), '--health', 'tcp', '--interval', '500ms', '--rise', '1', '--fall', '20']));

  const healthy = async (service: string) => (await admin.services()).find((view) => view.name === service)?.instances.filter((instance) => instance.routable && instance.health.state === 'healthy').length ?? 0;

  beforeAll(async () => {
    [zk, redisA, redisB, proxied] = await Promise.all([startZooKeeper(), startLocalRedis('redis-a'), startLocalRedis('redis-b'), startProxyV2Backend()]);
    await register('redis', 'redis-a', redisA.port);
    await register('redis', 'redis-b', redisB.port);
    await register('proxied', 'proxied-1', proxied.port);
    const certificate = await makeCertificate(await makeTempDir('sb-tcp-tls-'), 'tcp', { key: 'ec', names: ['redis.test', 'proxied.test'] });
    ca = await readFile(certificate.certFile);
    // Active checks every second that need five failures: after the kill, only the connect retry
    // (and outlier detection, which only traffic drives) can keep new connections off the dead Redis.
    gateway = await startGateway(`
entryPoints:
  redis: { listen: "127.0.0.1:{{port}}", protocol: tcp, service: redis }
  proxied: { listen: "127.0.0.1:{{port:proxied}}", protocol: tcp, service: proxied }
  secure:
    listen: "127.0.0.1:{{port:tls}}"
    protocol: tcp
    service: redis
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
    sni: { proxied.test: proxied }
admin: 127.0.0.1:{{adminPort}}
registries: [zk://${zk.connectString}/services]
services:
  redis: { balancer: least-connections, healthCheck: { interval: 1s, healthyThreshold: 1, unhealthyThreshold: 5 } }
  proxied: { proxyProtocol: 2, healthCheck: { interval: 1s, healthyThreshold: 1 } }
`);
    [proxiedPort, tlsPort] = [gateway.ports.proxied!, gateway.ports.tls!];
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await healthy('redis')) === 2 && (await healthy('proxied')) === 1, { timeoutMs: 30_000, message: 'both Redis and the PROXY backend registered and healthy' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await admin.services())}\n${await logOf(gateway.process)}`);
    });
  }, 90_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(agents.map((agent) => agent.stop()));
    await new Promise((resolve) => proxied?.server.close(resolve));
    await Promise.all([redisA?.close(), redisB?.close(), zk?.close()]);
  }, 60_000);

  it('serves redis-cli through the gateway: PING, and SET then GET on one connection', async () => {
    expect((await run('redis-cli', ['-h', '127.0.0.1', '-p', String(gateway.port), 'PING'])).stdout).toBe('PONG\n');
    const child = execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(gateway.port)]);
    child.stdin!.end('SET tcp-test through-the-gateway\nGET tcp-test\n');
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => child.once('close', resolve));
    expect(output).toBe('OK\nthrough-the-gateway\n');
  });

  it('spreads ten long-lived connections 5/5 over the two Redis with least-connections (CLIENT LIST on each)', async () => {
    const held: Socket[] = [];
    try {
      for (let index = 0; index < 10; index += 1) {
        const socket = await open(gateway.port);
        held.push(socket);
        // The answer proves the upstream connection is open (and counted) before the next pick.
        expect(await command(socket, 'CLIENT SETNAME held')).toBe('+OK');
      }
      expect([await namedClients(redisA, 'held'), await namedClients(redisB, 'held')]).toEqual([5, 5]);
      expect(await metric(admin, 'switchboard_tcp_connections_open', 'service="redis"')).toBe(10);
    } finally {
      for (const socket of held) socket.destroy();
    }
    await waitFor(async () => (await metric(admin, 'switchboard_tcp_connections_open', 'service="redis"')) === 0, { message: 'the held connections counted closed' });
  });

  it('sends a PROXY protocol v2 header with the real client address (127.0.0.2) before the first byte', async () => {
    const socket = await open(proxiedPort, '127.0.0.2');
    const clientPort = socket.localPort;
    expect(await command(socket, 'HELLO-BACKEND')).toBe('+OK');
    socket.destroy();
    expect(proxied.headers).toEqual([
      { command: 0x21, family: 0x11, source: '127.0.0.2', destination: '127.0.0.1', sourcePort: clientPort, destinationPort: proxiedPort, payload: 'HELLO-BACKEND\r\n' },
    ]);
  });

  it('terminates TLS on a tcp entry point and routes by server name: redis.test to Redis, proxied.test to the PROXY backend', async () => {
    const secure = (servername: string, localAddress?: string) =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connectTls({ host: '127.0.0.1', port: tlsPort, servername, ca, ...(localAddress ? { localAddress } : {}) });
        socket.once('secureConnect', () => resolve(socket)).once('error', reject);
      });
    const toRedis = await secure('redis.test');
    expect(await command(toRedis, 'PING')).toBe('+PONG');
    toRedis.destroy();
    const toProxied = await secure('proxied.test', '127.0.0.2');
    const clientPort = toProxied.localPort;
    expect(await command(toProxied, 'VIA-TLS')).toBe('+OK');
    toProxied.destroy();
    expect(proxied.headers.at(-1)).toEqual({ command: 0x21, family: 0x11, source: '127.0.0.2', destination: '127.0.0.1', sourcePort: clientPort, destinationPort: tlsPort, payload: 'VIA-TLS\r\n' });
    // Each connection gets an access log line once closed: entry point, server name, service, the
    // bytes each way (the PROXY header not counted), status 200 for a connection that reached an upstream.
    const tcpLine = async () =>
      (await readFile(gateway.process.logFile, 'utf8'))
        .split('\n')
        .filter((line) => line.includes('"protocol":"tcp"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line.serverName === 'proxied.test');
    await waitFor(async () => (await tcpLine()) !== undefined, { timeoutMs: 10_000, message: 'the access log line of the proxied.test connection' });
    expect(await tcpLine()).toMatchObject({
      level: 30,
      protocol: 'tcp',
      entryPoint: 'secure',
      status: 200,
      bytes: '+OK\r\n'.length,
      bytesReceived: 'VIA-TLS\r\n'.length,
      upstream: `127.0.0.1:${proxied.port}`,
      attempts: 1,
      service: 'proxied',
      clientIp: '127.0.0.2',
      serverName: 'proxied.test',
    });
  });

  it('routes a server name sent in capitals and with a trailing dot (as openssl s_client sends what is typed) as the certificate is chosen: proxied.test', async () => {
    // The certificate was chosen without case and trailing dot; the service by the name as sent, so the dotted name got proxied.test's certificate and went to Redis.
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const dotted = connectTls({ host: '127.0.0.1', port: tlsPort, servername: 'Proxied.Test.', ca, checkServerIdentity: () => undefined });
      dotted.once('secureConnect', () => resolve(dotted)).once('error', reject);
    });
    expect(socket.getPeerCertificate().subjectaltname).toContain('DNS:proxied.test');
    expect(await command(socket, 'DOTTED')).toBe('+OK');
    socket.destroy();
    expect(proxied.headers.at(-1)?.payload).toBe('DOTTED\r\n');
  });

  it('after kill -9 of one Redis, every new connection succeeds on the other (connect failures retried)', async () => {
    const refusals = () => metric(admin, 'switchboard_tcp_errors_total', 'service="redis",class="connect-refused"');
    const before = await refusals();
    // Connections before the kill warm the loop up; both instances take them (ties alternate).
    for (let index = 0; index < 10; index += 1) expect(await pingThrough(gateway.port)).toBe(true);
    // kill() returns once the process has exited: every connection started after it is "new".
    await redisA.kill();
    let succeeded = 0;
    const failures: number[] = [];
    let retried = 0;
    // At least 100 new connections, and until the gateway has shown a retried refusal, so the
    // loop is known to have met the dead instance (its checks need 5 s to take it out on their own).
    for (let index = 0; index < 100 || retried === 0; index += 1) {
      if (await pingThrough(gateway.port)) succeeded += 1;
      else failures.push(index);
      if (index % 10 === 9) retried = (await refusals()) - before;
      if (index > 2_000) throw new Error('no connect refusal was seen in 2,000 connections');
    }
    if (failures.length > 0) throw new Error(`connections ${failures.join(', ')} after the kill failed\n${await logOf(gateway.process)}`);
    expect(succeeded).toBeGreaterThanOrEqual(100);
    expect(retried).toBeGreaterThan(0);
  }, 120_000);
});

describe('tcp entry points with workers: 2, and the drain on SIGTERM', () => {
  let echo: Server;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const held: Socket[] = [];

  /**
   * An echo round trip on `socket`: resolves with what came back; rejects when the connection fails
   * or closes first (a plain FIN emits no 'error', and a probe left waiting would stall its waitFor).
   */
  const roundTrip = (socket: Socket, text: string) =>
    new Promise<string>((resolve, reject) => {
      const onClose = () => reject(new Error(`the connection closed before echoing ${JSON.stringify(text)}`));
      socket
        .once('data', (chunk: Buffer) => {
          socket.off('error', reject).off('close', onClose);
          resolve(chunk.toString());
        })
        .once('error', reject)
        .once('close', onClose);
      socket.write(text);
    });

  beforeAll(async () => {
    echo = createServer((socket) => socket.on('error', () => undefined).pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(`
entryPoints:
  echo: { listen: "127.0.0.1:{{port}}", protocol: tcp, service: echo }
admin: 127.0.0.1:{{adminPort}}
workers: 2
shutdown: { drainTimeout: 3s }
services:
  echo: { instances: ["127.0.0.1:${(echo.address() as AddressInfo).port}"], healthCheck: { interval: 1s, healthyThreshold: 1 } }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  }, 60_000);

  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await gateway?.process.stop();
    await new Promise((resolve) => echo?.close(resolve));
  }, 30_000);

  it('both workers take connections on the one port, and /metrics sums their open connections', async () => {
    const workers = async () => (await (await admin.get('/api/workers')).json()) as { inFlight: number; state: string }[];
    await waitFor(async () => (await workers()).filter((worker) => worker.state === 'listening').length === 2, { timeoutMs: 30_000, message: 'both workers to listen' });
    // The cluster module hands connections to the workers in turn; hold them until both have some.
    await waitFor(
      async () => {
        const socket = await open(gateway.port);
        held.push(socket);
        expect(await roundTrip(socket, `hello ${held.length}`)).toBe(`hello ${held.length}`);
        return (await workers()).every((worker) => worker.inFlight > 0);
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'both workers to hold connections' },
    );
    await waitFor(async () => (await metric(admin, 'switchboard_tcp_connections_open', 'service="echo"')) === held.length, { message: `/metrics to show ${held.length} open connections` });
  });

  it('on SIGTERM stops accepting, keeps open connections working until the drain deadline, then closes them and exits 0', async () => {
    const socket = held.at(-1)!;
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    const signalledAt = performance.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 10_000, message: 'the tcp listener to close' });
    // Still inside the 3 s deadline: the held connection forwards both ways.
    expect(await roundTrip(socket, 'still here')).toBe('still here');
    const closedAt = await closed;
    // Cut by the drain deadline, not by the signal: the connection outlived the signal by most of 3 s.
    expect(closedAt - signalledAt).toBeGreaterThan(2_000);
    const exit = await gateway.process.waitForExit(20_000);
    expect(exit.code).toBe(0);
    // Each held connection is logged once closed, the deadline's cut included: its upstream side
    // closes a tick after the cut, and the shutdown waits for the line before it closes the log.
    const lines = (await logOf(gateway.process)).split('\n').filter((line) => line.startsWith('{"level":30,"time":"') && line.includes('"protocol":"tcp"'));
    const carried = lines.map((line) => JSON.parse(line) as { bytesReceived: number; status: number; errorClass?: string }).filter((line) => line.bytesReceived > 0);
    expect(carried).toHaveLength(held.length);
    // The cut is named: they reached their instance (200), and the drain deadline ended them.
    for (const line of carried) expect(line).toMatchObject({ status: 200, errorClass: 'drain-timeout' });
  }, 40_000);
});
