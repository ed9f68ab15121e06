import { execFile, spawn } from 'node:child_process';
import { connect, constants, type IncomingHttpHeaders } from 'node:http2';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptsConnections,
  logOf,
  makeCertificate,
  makeTempDir,
  startAgentBackend,
  startGateway,
  startZooKeeper,
  waitFor,
  type AgentBackend,
  type GatewayProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

const run = promisify(execFile);
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const AGENT_FLAGS = ['--health', 'http:/healthz', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '4s'];

/** One request with Debian's curl: the HTTP version curl reports, the status and the body. */
async function curl(args: readonly string[], url: string): Promise<{ version: string; status: number; body: string }> {
  const { stdout } = await run('curl', ['-sS', '-k', '-m', '10', ...args, '-w', '\n%{http_version} %{http_code}', url], { timeout: 15_000 });
  const split = stdout.lastIndexOf('\n');
  const [version, status] = stdout.slice(split + 1).split(' ');
  return { version: version!, status: Number(status), body: stdout.slice(0, split) };
}

/** One HTTP/2 frame (RFC 9113 §4.1). */
function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** `:status: 999` in HPACK: a literal without indexing whose name is static entry 8 (`:status`). */
const STATUS_999 = Buffer.from([0x08, 0x03, ...Buffer.from('999')]);

/**
 * A raw upstream answering what node:http would send on but node:http2 refuses. Over HTTP/1.1:
 * status 999 on /odd/status, two Location headers on /odd/locations. Over HTTP/2 with prior
 * knowledge (which no node:http2 server can be made to send): `:status: 999` to every request.
 */
async function startOddUpstream(): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    let h2: boolean | undefined;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (h2 === undefined) {
        if (received.length < H2_PREFACE.length) return;
        h2 = received.subarray(0, H2_PREFACE.length).equals(H2_PREFACE);
        if (h2) {
          received = received.subarray(H2_PREFACE.length);
          socket.write(h2Frame(0x4, 0, 0));
        }
      }
      if (h2) {
        // Frames: a SETTINGS or PING is acknowledged, a request's HEADERS answered; the rest ignored.
        while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
          const [type, flags, streamId, payload] = [received[3]!, received[4]!, received.readUInt32BE(5) & 0x7fffffff, received.subarray(9, 9 + received.readUIntBE(0, 3))];
          received = received.subarray(9 + payload.length);
          if (type === 0x4 && (flags & 0x1) === 0) socket.write(h2Frame(0x4, 0x1, 0));
          else if (type === 0x6 && (flags & 0x1) === 0) socket.write(h2Frame(0x6, 0x1, 0, payload));
          else if (type === 0x1) socket.write(h2Frame(0x1, 0x4 | 0x1, streamId, STATUS_999));
        }
        return;
      }
      // One answer per whole request head (the gateway's GETs have no body).
      let text = received.toString('latin1');
      for (let end = text.indexOf('\r\n\r\n'); end >= 0; end = text.indexOf('\r\n\r\n')) {
        const path = text.split(' ')[1];
        text = text.slice(end + 4);
        if (path === '/odd/status') socket.write('HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nok');
        else socket.write('HTTP/1.1 302 Found\r\nlocation: /a\r\nlocation: /b\r\ncontent-length: 0\r\n\r\n');
      }
      received = Buffer.from(text, 'latin1');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** One GET over HTTP/2 with prior knowledge: the response headers. */
async function h2Get(base: string, path: string): Promise<IncomingHttpHeaders> {
  const session = connect(base);
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const stream = session.request({ ':path': path }, { endStream: true });
      let headers: IncomingHttpHeaders = {};
      stream.on('response', (received) => (headers = received));
      stream.on('error', reject);
      stream.resume();
      stream.on('end', () => resolve(headers));
    });
  } finally {
    session.destroy();
  }
}

describe('HTTP/2 from clients (ALPN h2 and h2c prior knowledge) to an HTTP/1.1 backend registered in ZooKeeper', () => {
  let zk: ZooKeeperCluster;
  let member: AgentBackend;
  let gateway: GatewayProcess;
  let tlsPort: number;
  let web: string;
  let websecure: string;
  let odd: Server;

  beforeAll(async () => {
    zk = await startZooKeeper();
    const dir = await makeTempDir('sb-h2-');
    const [certificate, agentBackend] = await Promise.all([
      makeCertificate(dir, 'site', { key: 'ec', names: ['site.test'] }),
      startAgentBackend({ registry: `zk://${zk.connectString}/services`, service: 'echo', id: 'echo-1', weight: 1, flags: AGENT_FLAGS }),
    ]);
    member = agentBackend;
    odd = await startOddUpstream();
    gateway = await startGateway(`
registries: [zk://${zk.connectString}/services]
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
  websecure:
    listen: 127.0.0.1:{{port:tls}}
    protocol: https
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
services:
  odd: { instances: [{ host: 127.0.0.1, port: ${(odd.address() as AddressInfo).port} }], healthCheck: false, outlierDetection: false, retries: false }
  odd-h2: { protocol: h2c, instances: [{ host: 127.0.0.1, port: ${(odd.address() as AddressInfo).port} }], healthCheck: false, outlierDetection: false, retries: false }
routes:
  - { path: /odd-h2, service: odd-h2 }
  - { path: /odd, service: odd }
  - { path: /api/echo, service: echo, stripPrefix: true }
  - { path: /secure-only, service: echo, stripPrefix: true, entryPoints: [websecure] }
`);
    web = gateway.url;
    tlsPort = gateway.ports.tls!;
    websecure = `https://127.0.0.1:${tlsPort}`;
    await waitFor(() => acceptsConnections(tlsPort), { timeoutMs: 10_000, message: 'the https entry point to listen' });
    await waitFor(async () => (await curl([], `${web}/api/echo/ready`)).status === 200, { timeoutMs: 20_000, message: 'the registered backend behind the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await member?.agent.stop();
    await zk?.close();
    odd?.close();
  });

  it.each([
    ['curl --http2 over TLS (ALPN h2)', ['--http2'], () => websecure, 'https'],
    ['curl --http2-prior-knowledge on the h2c entry point', ['--http2-prior-knowledge'], () => web, 'http'],
  ])('%s reaches the backend as HTTP/1.1 with :authority as Host and no pseudo-headers', async (_name, args, base, scheme) => {
    const answer = await curl(args, `${base()}/api/echo/users/7?x=1`);
    expect([answer.version, answer.status]).toEqual(['2', 200]);
    const echo = JSON.parse(answer.body) as { name: string; url: string; headers: Record<string, string> };
    expect(echo).toMatchObject({ name: 'echo-1', url: '/users/7?x=1' });
    expect(echo.headers.host).toBe(new URL(base()).host);
    expect(echo.headers['x-forwarded-proto']).toBe(scheme);
    expect(Object.keys(echo.headers).filter((name) => name.startsWith(':'))).toEqual([]);
  });

  it('sends an HTTP/2 request body upstream', async () => {
    const answer = await curl(['--http2-prior-knowledge', '-X', 'POST', '--data-binary', 'hello'], `${web}/api/echo/upload`);
    expect(answer.version).toBe('2');
    expect(JSON.parse(answer.body)).toMatchObject({ method: 'POST', headers: { 'content-length': '5' } });
  });

  it('still serves HTTP/1.1 on both entry points', async () => {
    for (const base of [web, websecure]) {
      const answer = await curl(['--http1.1'], `${base}/api/echo/old`);
      expect([answer.version, answer.status, (JSON.parse(answer.body) as { url: string }).url]).toEqual(['1.1', 200, '/old']);
    }
  });

  it('answers 404 on the entry point a route is not for, and serves it on its own', async () => {
    expect((await curl(['--http2-prior-knowledge'], `${web}/secure-only/x`)).status).toBe(404);
    expect((await curl(['--http1.1'], `${web}/secure-only/x`)).status).toBe(404);
    const answer = await curl(['--http2'], `${websecure}/secure-only/x`);
    expect([answer.version, answer.status]).toEqual(['2', 200]);
  });

  it.each([
    ['h2c', ['--http2-prior-knowledge'], () => web],
    ['h2 over TLS', ['--http2'], () => websecure],
  ])('streams a response over %s: the first chunk arrives before the backend is allowed to send the second', async (name, args, base) => {
    const key = `k-${name.replace(/\W/g, '')}-${Date.now()}`;
    const client = spawn('curl', ['-sS', '-k', '-N', '-m', '30', ...args, '-w', '\n%{http_version}', `${base()}/api/echo/stream/${key}`]);
    let output = '';
    client.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => client.once('close', resolve));
    try {
      await waitFor(() => output.includes('first echo-1'), { timeoutMs: 10_000, message: 'the first chunk through the gateway' });
      expect(output).not.toContain('second');
      // Only now may the backend send the rest.
      const released = await fetch(`http://127.0.0.1:${member.port}/release/${key}`, { method: 'POST' });
      expect(released.status).toBe(204);
      expect(await exited).toBe(0);
      expect(output).toBe('first echo-1\nsecond\n\n2');
    } finally {
      client.kill();
    }
  });

  // node:http2's response emits 'close' for a HEAD request reset this early only once the gateway ends it.
  it.each(['HEAD', 'GET'])('a %s request its client resets before any answer: the upstream request is aborted and the access log says so', async (method) => {
    const key = `reset-${method}-${Date.now()}`;
    const held = async () => (await fetch(`http://127.0.0.1:${member.port}/held/${key}`)).text();
    const session = connect(web);
    try {
      const stream = session.request({ ':method': method, ':path': `/api/echo/hold/${key}` }, { endStream: true });
      stream.on('error', () => undefined).resume();
      await waitFor(async () => (await held()) === 'waiting', { timeoutMs: 10_000, message: 'the request to reach the backend' });
      stream.close(constants.NGHTTP2_CANCEL);
      // Well within the gateway's headers timeout (30 s): the attempt ends because the client left.
      await waitFor(async () => (await held()) === 'abandoned', { timeoutMs: 10_000, message: 'the gateway to abort its upstream request' });
      const logged = (log: string) => log.split('\n').find((line) => line.includes(`"path":"/api/echo/hold/${key}"`));
      await waitFor(async () => logged(await logOf(gateway.process)) !== undefined, { timeoutMs: 10_000, message: "the request's access log line" });
      expect(JSON.parse(logged(await logOf(gateway.process))!)).toMatchObject({ method, aborted: true });
    } finally {
      session.destroy();
    }
  });

  it('answers 502 for an upstream status outside 200-599, to either protocol, and keeps serving', async () => {
    expect((await h2Get(web, '/odd/status'))[':status']).toBe(502);
    expect((await curl(['--http1.1'], `${web}/odd/status`)).status).toBe(502);
    // The same from an upstream spoken to over HTTP/2.
    expect((await h2Get(web, '/odd-h2/status'))[':status']).toBe(502);
    expect((await curl(['--http1.1'], `${web}/odd-h2/status`)).status).toBe(502);
    expect((await curl(['--http2-prior-knowledge'], `${web}/api/echo/still`)).status).toBe(200);
  });

  it("passes an upstream's repeated Location to an HTTP/2 client as its first value", async () => {
    expect(await h2Get(web, '/odd/locations')).toMatchObject({ ':status': 302, location: '/a' });
    expect((await curl(['--http2-prior-knowledge'], `${web}/api/echo/still`)).status).toBe(200);
  });
});
