import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** A backend in this process that answers with the path and Host it received, and counts what it accepts. */
interface EchoBackend {
  readonly name: string;
  readonly port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Request targets received so far. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** `hold`, when given, delays every answer until it settles. */
async function startEchoBackend(name: string, hold?: Promise<void>): Promise<EchoBackend> {
  const requests: string[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request.url ?? '');
    request.resume();
    request.on('end', async () => {
      await hold;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ name, url: request.url, host: request.headers.host }));
    });
  });
  const backend = {
    name,
    port: 0,
    connections: 0,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  server.on('connection', () => (backend.connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as AddressInfo).port;
  return backend;
}

/** Sends raw bytes in one write and collects the whole answer until the gateway closes the connection. */
function rawExchange(port: number, bytes: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
    socket.write(bytes);
  });
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  json: Record<string, unknown> | undefined;
}

function parseAnswer(raw: string): Answer {
  const [head = '', body = ''] = raw.split('\r\n\r\n', 2);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, json };
}

async function get(port: number, target: string, extraHeaders = 'Host: gateway.test\r\n'): Promise<Answer> {
  return parseAnswer(await rawExchange(port, `GET ${target} HTTP/1.1\r\n${extraHeaders}Connection: close\r\n\r\n`));
}

describe('the gateway normalises request targets before routing, as nginx does', () => {
  let user: EchoBackend;
  let priv: EchoBackend;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    [user, priv] = await Promise.all([startEchoBackend('user'), startEchoBackend('priv')]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
services:
  user: { instances: [127.0.0.1:${user.port}] }
  priv: { instances: [127.0.0.1:${priv.port}] }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
  - { path: /api/user/private, service: priv }
  - { host: a.example, path: /x, service: priv }
  - { host: b.example, path: /x, service: user }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([user?.close(), priv?.close()]);
  });

  // nginx (merge_slashes on, decoding escapes, resolving dot segments) sends each of these to the
  // same location; the path each backend sees is this gateway's normalised path.
  it.each([
    ['/api/user/x/../private', 'priv', '/api/user/private'],
    ['/api/user/./private', 'priv', '/api/user/private'],
    ['/api/user//private', 'priv', '/api/user/private'],
    ['/api/user/%2e/private', 'priv', '/api/user/private'],
    ['/api/user/%2E%2e/user/private', 'priv', '/api/user/private'],
    ['/api/%75ser/private', 'priv', '/api/user/private'],
    ['/api/user/../../../api/user/private', 'priv', '/api/user/private'],
    ['/api/user/x/../private?next=/../y', 'priv', '/api/user/private?next=/../y'],
    ['/api/user/private/../orders', 'user', '/orders'],
    ['/api/user/a/./b/', 'user', '/a/b/'],
    ['/api/user/a/b/..', 'user', '/a/'],
    ['/api/user/caf%c3%a9', 'user', '/caf%C3%A9'],
    ['/api/user/a%2fb', 'user', '/a%2Fb'],
    // A raw `\` is read as %5C and sent so: a WHATWG upstream would read `..\` as a dot segment.
    ['/api/user/x/..\\private', 'user', '/x/..%5Cprivate'],
  ])('routes %s to %s, which sees %s', async (target, service, seen) => {
    const answer = await get(gateway.port, target);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ name: service, url: seen });
  });

  it.each([
    ['/api/user/%zz', 'invalid-percent-encoding'],
    ['/api/user/%0', 'invalid-percent-encoding'],
    ['/api/user/%00/private', 'nul-in-path'],
  ])('answers 400 to %s (%s) with a JSON body carrying the request id', async (target, error) => {
    const requestsBefore = user.requests.length + priv.requests.length;
    const answer = await get(gateway.port, target, 'Host: gateway.test\r\nX-Request-Id: paths-400\r\n');
    expect(answer.status).toBe(400);
    expect(answer.headers['x-request-id']).toBe('paths-400');
    expect(answer.json).toMatchObject({ error, status: 400, requestId: 'paths-400' });
    expect(user.requests.length + priv.requests.length).toBe(requestsBefore);
  });

  it('routes nowhere a raw backslash after a prefix, as %5C: it does not end the segment', async () => {
    const answer = await get(gateway.port, '/api/user\\private');
    expect(answer.status).toBe(404);
    expect(answer.json).toMatchObject({ error: 'no-route' });
  });

  it('answers 400 to a request with two Host headers and forwards nothing', async () => {
    const requestsBefore = user.requests.length + priv.requests.length;
    const answer = await get(gateway.port, '/api/user/x', 'Host: a.example\r\nHost: b.example\r\n');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: 'duplicate-host', status: 400 });
    expect(user.requests.length + priv.requests.length).toBe(requestsBefore);
  });

  it.each([['a.example x'], ['a.example/x'], ['b@a.example'], ['a.example\\x'], ['a.example\u00ff']])('answers 400 invalid-host to Host: %s and forwards nothing', async (host) => {
    const requestsBefore = user.requests.length + priv.requests.length;
    const answer = await get(gateway.port, '/api/user/x', `Host: ${host}\r\n`);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: 'invalid-host', status: 400 });
    expect(user.requests.length + priv.requests.length).toBe(requestsBefore);
  });

  it('still routes a Host with a port, an IPv6 literal, a trailing dot or no value at all', async () => {
    for (const host of ['gateway.test:8080', '[::1]:8080', 'gateway.test.', '']) {
      const answer = await get(gateway.port, '/api/user/x', `Host: ${host}\r\n`);
      expect(answer.json, host).toMatchObject({ name: 'user', url: '/x', host });
    }
  });

  it('sends upstream the Host it routed by though the client names Host in Connection', async () => {
    const answer = await get(gateway.port, '/x', 'Host: a.example\r\nConnection: keep-alive, Host\r\n');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ name: 'priv', url: '/x', host: 'a.example' });
  });

  it('routes an absolute-form target by its authority and sends origin-form upstream with that Host', async () => {
    const answer = await get(gateway.port, 'http://a.example/x?q=1', 'Host: b.example\r\n');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ name: 'priv', url: '/x?q=1', host: 'a.example' });
  });
});

describe('the gateway never routes a request from bytes that fail to parse', () => {
  it('answers 400 to CL+TE and to what rides with it, with no upstream connection and no upstream attempt logged', async () => {
    const backend = await startEchoBackend('smuggle');
    const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
services:
  smuggle: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /, service: smuggle }
`);
    try {
      const exchanges = [
        // CL+TE alone.
        'POST /clte-alone HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
        // CL+TE smuggled behind a well-formed request in the same write (a desync probe).
        'POST /clte-front HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nPOST /clte-behind HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
        // A chunked body that fails to parse right behind its valid head.
        'POST /bad-chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
      ];
      for (const bytes of exchanges) {
        const answer = parseAnswer(await rawExchange(gateway.port, bytes));
        expect(answer.status, bytes).toBe(400);
      }
      // A well-formed request afterwards proves the gateway and the backend work, and orders the logs.
      const control = await get(gateway.port, '/control');
      expect(control.json).toMatchObject({ name: 'smuggle', url: '/control' });
      expect(backend.requests).toEqual(['/control']);
      expect(backend.connections).toBe(1);
      // The access log is buffered: stopping the gateway flushes it.
      await gateway.process.stop();
      const log = await readFile(gateway.process.logFile, 'utf8');
      const accessLines = log
        .split('\n')
        .filter((line) => line.includes('"requestId"') && line.includes('"path"'))
        .map((line) => JSON.parse(line) as { path: string; upstream?: string; attempts: number });
      expect(accessLines.map((line) => line.path)).toEqual(['/control']);
      expect(accessLines[0]).toMatchObject({ attempts: 1, upstream: `127.0.0.1:${backend.port}` });
      // Each 400 is a line of its own, without request id, route, service or upstream; a path only
      // from a head that parsed (the bad chunk's), not from one refused as CL+TE.
      const refusals = log
        .split('\n')
        .filter((line) => line.includes('"errorClass"') && !line.includes('"requestId"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      const refused = { status: 400, durationMs: 0, bytes: 60, attempts: 0, clientIp: '127.0.0.1', errorClass: 'bad-request' };
      expect(refusals).toEqual([
        { level: 30, time: expect.any(String), ...refused },
        { level: 30, time: expect.any(String), ...refused },
        { level: 30, time: expect.any(String), method: 'POST', path: '/bad-chunk', ...refused },
      ]);
    } finally {
      await gateway.process.stop();
      await backend.close();
    }
  });

  it('answers a request in flight first, then 400 for malformed bytes that follow it in a later read', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const backend = await startEchoBackend('pipelined', held);
    const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
services:
  pipelined: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /, service: pipelined }
`);
    try {
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(gateway.port, '127.0.0.1');
        let text = '';
        socket.setTimeout(15_000, () => socket.destroy());
        socket.on('data', (chunk) => (text += chunk.toString('latin1')));
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
        socket.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n');
        // The malformed request follows once the first is with the backend (which holds its answer),
        // and the backend answers only once the gateway has refused the malformed bytes.
        void (async () => {
          await waitFor(() => backend.requests.length === 1, { timeoutMs: 10_000, message: 'the first request to reach the backend' });
          socket.write('POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG');
          await waitFor(async () => (await readFile(gateway.process.logFile, 'utf8')).includes('refused a malformed request'), {
            timeoutMs: 10_000,
            message: 'the gateway to refuse the malformed request',
          });
        })()
          .catch(() => socket.destroy())
          .finally(release);
      });
      const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));
      expect(statuses).toEqual([200, 400]);
      expect(answer).toContain('"url":"/first"');
      expect(backend.requests).toEqual(['/first']);
    } finally {
      release();
      await gateway.process.stop();
      await backend.close();
    }
  });
});
