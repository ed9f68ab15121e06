import { readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { makeCertificate, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** A raw TCP backend in the test process: it reads each connection's request head and hands the socket to `answer`. */
interface UpgradeBackend {
  readonly port: number;
  /** Request heads received, in order. */
  readonly requests: string[];
  /** The connection each request came on, in the same order. */
  readonly sockets: Socket[];
  /** Connections accepted and not yet closed. */
  readonly open: Set<Socket>;
  answer: (socket: Socket, head: string) => void;
  close(): Promise<void>;
}

async function startUpgradeBackend(answer: UpgradeBackend['answer'], options: { allowHalfOpen?: boolean } = {}): Promise<UpgradeBackend> {
  const requests: string[] = [];
  const sockets: Socket[] = [];
  const open = new Set<Socket>();
  const backend = { requests, sockets, open, answer } as UpgradeBackend & { port: number; server: Server };
  const server = createServer(options, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const head = received.slice(0, end);
      requests.push(head);
      sockets.push(socket);
      backend.answer(socket, head);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(backend, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

const UPGRADE_REQUEST = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

/** An answer read off a raw socket: status, lower-cased headers and the body its Content-Length frames. */
interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends an upgrade request and resolves with the first complete answer (Content-Length framed), or what came before the connection closed. */
function upgradeExchange(port: number, path: string, timeoutMs = 10_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${timeoutMs} ms: ${JSON.stringify(received)}`)), timeoutMs);
    const parse = (): RawAnswer | undefined => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const [statusLine, ...lines] = received.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const body = received.slice(end + 4);
      const length = Number(headers['content-length'] ?? Number.NaN);
      if (!Number.isNaN(length) && body.length < length) return undefined;
      return { status: Number(statusLine!.split(' ')[1]), headers, body };
    };
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      const answer = parse();
      if (answer) resolve(answer);
      else reject(error ?? new Error(`the connection closed after ${JSON.stringify(received)}`));
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const answer = parse();
      if (answer && (answer.headers['content-length'] !== undefined || answer.status === 101)) finish();
    });
    socket.on('close', () => finish());
    socket.on('error', () => undefined);
    socket.write(UPGRADE_REQUEST(path));
  });
}

/** Reads `socket` from now until its 'end' (or 'close'). */
function readToEnd(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('close', () => resolve(Buffer.concat(chunks)));
    socket.resume();
  });
}

describe('WebSocket handshakes the upstream refuses', () => {
  let forbidding: UpgradeBackend;
  let unavailableA: UpgradeBackend;
  let unavailableB: UpgradeBackend;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    forbidding = await startUpgradeBackend((socket) =>
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Reason: no-token\r\nConnection: close\r\nContent-Length: 15\r\n\r\nno token given\n'),
    );
    const unavailable = (socket: Socket) => socket.end('HTTP/1.1 503 Service Unavailable\r\nX-From: backend\r\nConnection: close\r\nContent-Length: 11\r\n\r\nbusy, sorry');
    [unavailableA, unavailableB] = await Promise.all([startUpgradeBackend(unavailable), startUpgradeBackend(unavailable)]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
services:
  forbidding: { instances: [127.0.0.1:${forbidding.port}], outlierDetection: false }
  unavailable:
    instances: [127.0.0.1:${unavailableA.port}, 127.0.0.1:${unavailableB.port}]
    outlierDetection: false
    retries: { attempts: 3 }
    circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s }
routes:
  - { path: /forbidden, service: forbidding, responseHeaders: { set: { x-served-by: switchboard } } }
  - { path: /unavailable, service: unavailable }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([forbidding, unavailableA, unavailableB].map((backend) => backend?.close()));
  });

  it("relays the upstream's refusal as it sent it: status, end-to-end headers and body", async () => {
    const answer = await upgradeExchange(gateway.port, '/forbidden');
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reason']).toBe('no-token');
    expect(answer.headers['content-type']).toBe('text/plain');
    // The route's response header rules apply to a relayed refusal like to any answer.
    expect(answer.headers['x-served-by']).toBe('switchboard');
    expect(answer.body).toBe('no token given\n');
    expect(forbidding.requests).toHaveLength(1);
  });

  it('relays a 5xx refusal without retrying it, and counts it for the circuit breaker', async () => {
    const reached = () => unavailableA.requests.length + unavailableB.requests.length;
    const first = await upgradeExchange(gateway.port, '/unavailable');
    expect([first.status, first.headers['x-from'], first.body]).toEqual([503, 'backend', 'busy, sorry']);
    // An answer the client got is not retried on the other instance.
    expect(reached()).toBe(1);
    // Every refusal so far was a failure: after the volume threshold, the breaker opens and the gateway answers alone.
    let sent = 1;
    let answer = first;
    while (answer.headers['x-from'] === 'backend' && sent < 20) {
      answer = await upgradeExchange(gateway.port, '/unavailable');
      sent += 1;
    }
    expect(answer.status).toBe(503);
    expect(answer.headers['x-from']).toBeUndefined();
    expect(reached()).toBe(sent - 1);
    expect(reached()).toBeLessThanOrEqual(6);
  });
});

describe('WebSocket connections', () => {
  const backends: UpgradeBackend[] = [];
  const gateways: GatewayProcess[] = [];
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((gateway) => gateway.process.kill()));
    await Promise.all(backends.splice(0).map((backend) => backend.close()));
  });
  const configFor = (backend: UpgradeBackend, extra = '') => `
listen: 127.0.0.1:{{port}}
admin: false
services:
  ws: { instances: [127.0.0.1:${backend.port}], outlierDetection: false${extra} }
routes:
  - { path: /, service: ws }
shutdown: { drainTimeout: 1s }
`;
  /** A backend that never answers, a gateway before it, and a client whose handshake has reached the backend. */
  const handshakeWaiting = async (path: string, extra = '') => {
    const backend = await startUpgradeBackend(() => undefined);
    backends.push(backend);
    const gateway = await startGateway(configFor(backend, extra));
    gateways.push(gateway);
    const client = connect(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(UPGRADE_REQUEST(path));
    await waitFor(() => backend.requests.length === 1, { message: 'the handshake to reach the backend' });
    return { backend, gateway, client };
  };

  it('delivers every byte an upstream sends before its FIN to a client that reads slowly', async () => {
    const size = 8 << 20;
    const backend = await startUpgradeBackend((socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.end(Buffer.alloc(size, 'w'));
    });
    backends.push(backend);
    const gateway = await startGateway(configFor(backend));
    gateways.push(gateway);

    const client = connect(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(UPGRADE_REQUEST('/stream'));
    // A slow reader: 64 KB, then a pause of 2 ms. The gateway's writes to it wait for it, and the
    // upstream's FIN reaches the gateway while its last bytes are still on their way.
    const received = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let sincePause = 0;
      client.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        sincePause += chunk.length;
        if (sincePause < 64 << 10) return;
        sincePause = 0;
        client.pause();
        setTimeout(() => client.resume(), 2);
      });
      client.once('end', () => resolve(Buffer.concat(chunks)));
      client.once('close', () => resolve(Buffer.concat(chunks)));
    });
    client.destroy();
    const head = received.indexOf('\r\n\r\n');
    expect(received.subarray(0, 12).toString()).toBe('HTTP/1.1 101');
    expect(received.length - head - 4).toBe(size);
  });

  it("passes each side's FIN on and keeps the other direction open (half-close)", async () => {
    const fromClient: Buffer[] = [];
    let backendGotEnd = false;
    const backend = await startUpgradeBackend((socket) => {
      socket.on('data', (chunk: Buffer) => fromClient.push(chunk));
      socket.on('end', () => (backendGotEnd = true));
      // The upstream says goodbye and half-closes, then waits for the client's last words.
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\ngoodbye');
      socket.end();
    }, { allowHalfOpen: true });
    backends.push(backend);
    const gateway = await startGateway(configFor(backend));
    gateways.push(gateway);

    const client = connect({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => undefined);
    client.write(UPGRADE_REQUEST('/half-close'));
    const received = await readToEnd(client);
    expect(received.toString('latin1').endsWith('\r\n\r\ngoodbye')).toBe(true);
    client.end('bye too');
    await waitFor(() => backendGotEnd, { timeoutMs: 5_000, message: "the client's FIN to reach the backend" });
    expect(Buffer.concat(fromClient).toString()).toBe('bye too');
    client.destroy();
  });

  it('passes on the bytes a client sends before the upstream accepted its upgrade', async () => {
    let accept!: () => void;
    const accepted = new Promise<void>((resolve) => (accept = resolve));
    const fromClient: Buffer[] = [];
    const backend = await startUpgradeBackend((socket) => {
      socket.on('data', (chunk: Buffer) => fromClient.push(chunk));
      void accepted.then(() => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
    });
    backends.push(backend);
    const gateway = await startGateway(configFor(backend));
    gateways.push(gateway);
    const client = connect(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    // The first message rides with the request, the second comes while the handshake waits.
    client.write(`${UPGRADE_REQUEST('/early')}first;`);
    await waitFor(() => backend.requests.length === 1, { message: 'the handshake to reach the backend' });
    client.write('second;');
    accept();
    await waitFor(() => Buffer.concat(fromClient).toString() === 'first;second;', { timeoutMs: 5_000, message: "the client's early bytes to reach the backend" });
    client.write('third;');
    await waitFor(() => Buffer.concat(fromClient).toString() === 'first;second;third;', { timeoutMs: 5_000, message: 'a later byte to follow' });
    client.destroy();
  });

  it('closes an upgraded connection after timeouts.websocketIdle without a byte either way, not while it talks', async () => {
    const backend = await startUpgradeBackend((socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
    });
    backends.push(backend);
    const gateway = await startGateway(configFor(backend, ', timeouts: { websocketIdle: 1s }'));
    gateways.push(gateway);
    const client = connect(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    let received = '';
    client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    let closed = false;
    client.on('close', () => (closed = true));
    client.write(UPGRADE_REQUEST('/idle'));
    await waitFor(() => received.startsWith('HTTP/1.1 101'), { message: 'the 101' });

    // A ping every 200 ms for 2.5 s, two and a half idle timeouts: the connection stays up.
    const talkUntil = Date.now() + 2_500;
    let pings = 0;
    let lastPingAt = 0;
    while (Date.now() < talkUntil) {
      lastPingAt = Date.now();
      client.write('p');
      pings += 1;
      await waitFor(() => received.endsWith('p'.repeat(pings)), { timeoutMs: 5_000, message: `echo ${pings}` });
      expect(closed).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await waitFor(() => closed, { timeoutMs: 5_000, message: 'the idle connection to close' });
    // The gateway saw the last ping (and its echo) after it was written, so a full timeout had passed.
    expect(Date.now() - lastPingAt).toBeGreaterThanOrEqual(950);
    await waitFor(() => backend.sockets[0]!.closed, { timeoutMs: 2_000, message: 'the upstream side to close too' });
  });

  it('lets SIGTERM end the gateway within the drain deadline while a handshake waits for a silent upstream', async () => {
    const { gateway, client } = await handshakeWaiting('/silent');
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    const exit = await gateway.process.waitForExit(20_000);
    expect(exit.code).toBe(0);
    // drainTimeout is 1 s; timeouts.headers (30 s) must not hold the exit.
    expect(Date.now() - signalledAt).toBeLessThan(6_000);
    client.destroy();
  });

  it('abandons the handshake when the client leaves: the upstream connection closes and the request slot frees', async () => {
    const { backend, gateway, client } = await handshakeWaiting('/leaving', ', concurrency: { maxRequests: 1 }');
    client.destroy();
    // Well before timeouts.headers (30 s), and before the pool would close an idle connection (4 s).
    await waitFor(() => backend.sockets[0]!.closed, { timeoutMs: 3_000, message: "the handshake's upstream connection to close" });
    // The one request slot is free again: the next handshake reaches the backend instead of a 503.
    const next = connect(gateway.port, '127.0.0.1');
    next.on('error', () => undefined);
    next.write(UPGRADE_REQUEST('/next'));
    await waitFor(() => backend.requests.length === 2, { timeoutMs: 5_000, message: 'the second handshake to reach the backend' });
    next.destroy();
  });

  it('abandons the handshake when the client sends a first frame and then its FIN', async () => {
    const { backend, client } = await handshakeWaiting('/early-then-gone');
    // Bytes the gateway holds for the splice must not hide the FIN behind them.
    client.end(Buffer.from([0x81, 0x05, ...Buffer.from('early')]));
    await waitFor(() => backend.sockets[0]!.closed, { timeoutMs: 3_000, message: "the handshake's upstream connection to close" });
  });
});

describe('WebSocket tunnels as a ws client and a ws server see them', () => {
  let upstream: WebSocketServer;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let securePort: number;
  /** The upstream's connections, in order, with the close code and reason each received (once closed). */
  const accepted: { socket: WebSocket; closed?: { code: number; reason: string } }[] = [];

  beforeAll(async () => {
    upstream = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => upstream.once('listening', resolve));
    upstream.on('connection', (socket) => {
      const entry: (typeof accepted)[number] = { socket };
      accepted.push(entry);
      socket.on('error', () => undefined);
      socket.on('close', (code, reason) => (entry.closed = { code, reason: reason.toString() }));
      socket.on('message', (data) => {
        if (data.toString() === 'close please') socket.close(4001, 'server says bye');
        else socket.send(data);
      });
    });
    const dir = await makeTempDir('sb-ws-tls-');
    const certificate = await makeCertificate(dir, 'ws', { key: 'ec', names: ['ws.test'] });
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  secure: { listen: "127.0.0.1:{{port:secure}}", protocol: https, tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] } }
admin: 127.0.0.1:{{adminPort}}
services:
  ws: { instances: [127.0.0.1:${(upstream.address() as AddressInfo).port}] }
routes:
  - { path: /, service: ws }
`);
    securePort = gateway.ports.secure!;
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  }, 60_000);
  afterAll(async () => {
    await gateway?.process.stop();
    for (const { socket } of accepted) socket.terminate();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  /** A WebSocket through the gateway, open, with the close code and reason it receives; `accepted` has its upstream side last. */
  const openThrough = async (url: string) => {
    const before = accepted.length;
    const socket = new WebSocket(url, { rejectUnauthorized: false });
    const state: { closed?: { code: number; reason: string } } = {};
    socket.on('error', () => undefined);
    socket.on('close', (code, reason) => (state.closed = { code, reason: reason.toString() }));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_request, response) => reject(new Error(`the upgrade was answered ${response.statusCode}`)));
      socket.once('close', () => reject(new Error('the WebSocket closed before it opened')));
    });
    await waitFor(() => accepted.length === before + 1, { message: 'the upstream to accept the tunnel' });
    return { socket, state, upstream: accepted.at(-1)! };
  };
  /** The one instance's `requests` and `errors`, as the admin API counts them. */
  const counts = async () => {
    const view = (await (await admin.get('/api/services')).json()) as { services: { name: string; instances: { requests: number; errors: number }[] }[] };
    const { requests, errors } = view.services.find((service) => service.name === 'ws')!.instances[0]!;
    return { requests, errors };
  };

  it.each([
    ['ws:// through the http entry point', () => `ws://127.0.0.1:${gateway.port}/chat`],
    ['wss:// through the https entry point', () => `wss://127.0.0.1:${securePort}/chat`],
  ])('passes close frames with their code and reason both ways (%s)', async (_name, url) => {
    const first = await openThrough(url());
    first.socket.send('close please');
    await waitFor(() => first.state.closed !== undefined, { timeoutMs: 5_000, message: "the server's close to reach the client" });
    expect(first.state.closed).toEqual({ code: 4001, reason: 'server says bye' });

    const second = await openThrough(url());
    second.socket.send('hello');
    await new Promise((resolve) => second.socket.once('message', resolve));
    second.socket.close(4002, 'client says bye');
    await waitFor(() => second.upstream.closed !== undefined, { timeoutMs: 5_000, message: "the client's close to reach the server" });
    expect(second.upstream.closed).toEqual({ code: 4002, reason: 'client says bye' });
  });

  /** The TCP socket under a `ws` WebSocket, to make it vanish without a close frame. */
  const rawSocket = (socket: WebSocket) => (socket as unknown as { _socket: Socket })._socket;

  it.each([
    ['destroyed (FIN)', (socket: WebSocket) => rawSocket(socket).destroy()],
    ['reset (RST)', (socket: WebSocket) => rawSocket(socket).resetAndDestroy()],
  ])("closes the upstream's side at once when the client's socket vanishes, %s, and counts the tunnel against no instance", async (_name, vanish) => {
    const before = await counts();
    const { socket, upstream: side } = await openThrough(`ws://127.0.0.1:${gateway.port}/vanishing`);
    vanish(socket);
    // Well before any idle timeout (websocketIdle is 1 h): the splice takes the upstream down with the client.
    await waitFor(() => side.closed !== undefined, { timeoutMs: 3_000, message: "the upstream's side to close" });
    expect(side.closed!.code).toBe(1006);
    expect(await counts()).toEqual({ requests: before.requests + 1, errors: before.errors });
  });

  /** The access log lines (the gateway's stdout, in its log file with stderr) whose path is `path`. */
  const accessLinesOf = async (path: string) =>
    (await readFile(gateway.process.logFile, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('{"level":30,"time":"') && line.includes(`"path":"${path}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('writes one access log line per tunnel once it has closed: status 101, the bytes the upstream sent through it, not aborted', async () => {
    const { socket } = await openThrough(`ws://127.0.0.1:${gateway.port}/logged?n=1`);
    // Echoed: 200 bytes of payload in one unmasked frame from the server (4 bytes of header: a 16-bit length).
    socket.send('x'.repeat(200));
    await new Promise((resolve) => socket.once('message', resolve));
    expect(await accessLinesOf('/logged?n=1')).toEqual([]);
    socket.close(1000, 'done');
    await waitFor(async () => (await accessLinesOf('/logged?n=1')).length > 0, { timeoutMs: 5_000, message: "the tunnel's access log line" });
    const lines = await accessLinesOf('/logged?n=1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'GET', status: 101, upstream: expect.any(String), attempts: 1, service: 'ws' });
    expect(lines[0]).not.toHaveProperty('aborted');
    // The 200-byte echo (204 bytes framed) and the server's close frame (2 + 2 + 4 bytes): nothing of the 101's head.
    expect(lines[0]!.bytes).toBe(204 + 8);
  });

  it("closes the client's side at once when the upstream's socket vanishes", async () => {
    const { state, upstream: side } = await openThrough(`ws://127.0.0.1:${gateway.port}/upstream-vanishing`);
    rawSocket(side.socket).resetAndDestroy();
    await waitFor(() => state.closed !== undefined, { timeoutMs: 3_000, message: "the client's side to close" });
    expect(state.closed!.code).toBe(1006);
  });
});

describe('WebSocket tunnels and least-connections', () => {
  /** Two ws servers; each keeps its open connections. */
  const upstreams: { server: WebSocketServer; open: Set<WebSocket>; port: number }[] = [];
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const clients: WebSocket[] = [];

  beforeAll(async () => {
    for (let index = 0; index < 2; index += 1) {
      const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
      await new Promise((resolve) => server.once('listening', resolve));
      const open = new Set<WebSocket>();
      server.on('connection', (socket) => {
        open.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => open.delete(socket));
      });
      upstreams.push({ server, open, port: (server.address() as AddressInfo).port });
    }
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  ws:
    balancer: least-connections
    instances: [127.0.0.1:${upstreams[0]!.port}, 127.0.0.1:${upstreams[1]!.port}]
routes:
  - { path: /idle, service: ws, timeouts: { websocketIdle: 300ms } }
  - { path: /, service: ws }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await gateway?.process.stop();
    for (const { server, open } of upstreams) {
      for (const socket of open) socket.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** Opens a tunnel through the gateway and resolves with the index of the upstream that took it, once that upstream holds it. */
  const openTunnel = async (path = '/tunnel'): Promise<{ client: WebSocket; upstream: number }> => {
    const before = upstreams.map(({ server }) => server.clients.size);
    const client = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`);
    clients.push(client);
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('unexpected-response', (_request, response) => reject(new Error(`the upgrade was answered ${response.statusCode}`)));
      client.once('close', () => reject(new Error('the WebSocket closed before it opened')));
    });
    const upstream = await waitFor(() => {
      const grown = upstreams.findIndex(({ server }, index) => server.clients.size > before[index]!);
      return grown < 0 ? undefined : { index: grown };
    }, { message: 'an upstream to accept the tunnel' });
    return { client, upstream: upstream.index };
  };
  /** Each instance's in-flight count as `/api/services` shows it, in the order of the configuration. */
  const inFlight = async () => {
    const service = (await admin.services()).find((candidate) => candidate.name === 'ws')!;
    return upstreams.map(({ port }) => service.instances.find((instance) => instance.address === `127.0.0.1:${port}`)!.inFlight);
  };

  it('counts open tunnels as in flight, so new tunnels go to the instance whose tunnels closed', async () => {
    // One at a time: each tunnel is open (and counted) before the next is picked.
    const first: { client: WebSocket; upstream: number }[] = [];
    for (let index = 0; index < 4; index += 1) first.push(await openTunnel());
    expect([0, 1].map((upstream) => first.filter((tunnel) => tunnel.upstream === upstream).length)).toEqual([2, 2]);
    // The handshakes are long over; the tunnels are what the admin API counts.
    expect(await inFlight()).toEqual([2, 2]);

    // The first instance's tunnels end, one closed by its client, one cut by the upstream.
    const [closedByClient, cutByUpstream] = first.filter((tunnel) => tunnel.upstream === 0);
    closedByClient!.client.close(1000, 'done');
    await waitFor(async () => upstreams[0]!.open.size === 1 && (await inFlight())[0] === 1, { timeoutMs: 5_000, message: "the client's close to end its tunnel and release its count" });
    [...upstreams[0]!.open][0]!.terminate();
    await waitFor(async () => cutByUpstream!.client.readyState === WebSocket.CLOSED && (await inFlight())[0] === 0, { timeoutMs: 5_000, message: "the upstream's cut to end its tunnel and release its count" });
    expect(await inFlight()).toEqual([0, 2]);

    // Released at the 101, the tie-break would alternate; counted, both new tunnels go to the emptied instance.
    const next = [await openTunnel(), await openTunnel()];
    expect(next.map((tunnel) => tunnel.upstream)).toEqual([0, 0]);
    expect(await inFlight()).toEqual([2, 2]);

    for (const client of clients) client.close(1000, 'bye');
    await waitFor(async () => (await inFlight()).every((count) => count === 0), { timeoutMs: 5_000, message: 'every tunnel to be released' });
  });

  it('releases the count of a tunnel the idle timeout closes', async () => {
    await waitFor(async () => (await inFlight()).every((count) => count === 0), { timeoutMs: 5_000, message: 'no tunnel to be open' });
    const { client } = await openTunnel('/idle');
    // Sent nothing, the tunnel is closed by the route's 300 ms websocketIdle, not by either side.
    await waitFor(async () => client.readyState === WebSocket.CLOSED && (await inFlight()).every((count) => count === 0), {
      timeoutMs: 5_000,
      message: 'the idle timeout to close the tunnel and release its count',
    });
  });
});
