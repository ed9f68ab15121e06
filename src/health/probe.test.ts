import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startSwitchableBackend, type SwitchableBackend } from './health-testing.ts';
import { httpProbe } from './probe-http.ts';
import { tcpProbe } from './probe-tcp.ts';
import { probeOnPort, type ProbeTarget } from './probe.ts';
import { freePort } from '../../test/harness/ports.ts';

const targetAt = (port: number): ProbeTarget => ({ address: `127.0.0.1:${port}`, host: '127.0.0.1', port, protocol: 'http' });

describe('httpProbe', () => {
  const backends: SwitchableBackend[] = [];
  const silent: TcpServer[] = [];
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((backend) => backend.close()));
    await Promise.all(silent.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it.each([
    { status: 200, expected: undefined, healthy: true },
    { status: 299, expected: undefined, healthy: true },
    { status: 500, expected: undefined, healthy: false },
    { status: 301, expected: undefined, healthy: false },
    { status: 204, expected: [204, { from: 300, to: 399 }], healthy: true },
    { status: 302, expected: [204, { from: 300, to: 399 }], healthy: true },
    { status: 200, expected: [204, { from: 300, to: 399 }], healthy: false },
  ])('judges status $status against $expected as healthy: $healthy', async ({ status, expected, healthy }) => {
    const backend = await startSwitchableBackend(status);
    backends.push(backend);
    const probe = httpProbe(expected ? { expectedStatuses: expected } : {});
    expect(await probe(backend.target, new AbortController().signal)).toEqual({ healthy, detail: `status ${status}` });
  });

  it('requests the configured path with the target as Host unless told otherwise', async () => {
    const backend = await startSwitchableBackend();
    backends.push(backend);
    await httpProbe({ path: '/ready?deep=1' })(backend.target, new AbortController().signal);
    await httpProbe({ hostHeader: 'api.internal' })(backend.target, new AbortController().signal);
    expect(backend.requests).toEqual([
      { path: '/ready?deep=1', host: backend.target.address },
      { path: '/health', host: 'api.internal' },
    ]);
  });

  it('fails with ECONNREFUSED when nothing listens', async () => {
    expect(await httpProbe()(targetAt(await freePort()), new AbortController().signal)).toEqual({ healthy: false, detail: 'ECONNREFUSED' });
  });

  it('closes its connection once the status is in, though the body never ends', async () => {
    let open = 0;
    // Sends the status and a first byte of a longer body, then nothing more.
    const server = createHttpServer((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('x');
    });
    server.on('connection', (socket) => {
      open += 1;
      socket.once('close', () => (open -= 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const target = targetAt((server.address() as AddressInfo).port);
      for (let check = 0; check < 3; check += 1) expect(await httpProbe()(target, new AbortController().signal)).toEqual({ healthy: true, detail: 'status 200' });
      // The checker gives each probe no deadline past its verdict: a socket left open here stays open for good.
      await vi.waitFor(() => expect(open).toBe(0), { timeout: 5_000 });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails with a timeout when the server accepts but never answers', async () => {
    // Reads (so it notices the client hanging up) but never answers.
    const server = createTcpServer((socket) => socket.resume());
    silent.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const result = await httpProbe()(targetAt((server.address() as AddressInfo).port), AbortSignal.timeout(50));
    expect(result).toEqual({ healthy: false, detail: 'timeout' });
  });
});

describe('httpProbe over HTTP/2', () => {
  const silent: TcpServer[] = [];
  afterEach(async () => {
    await Promise.all(silent.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('speaks HTTP/2 with prior knowledge to an h2c target, which an HTTP/1.1 check could not reach', async () => {
    const seen: string[] = [];
    const server = createHttp2Server((request, response) => {
      seen.push(`${request.httpVersion} ${request.url} ${request.headers[':authority']}`);
      response.statusCode = request.url === '/health' ? 204 : 404;
      response.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const signal = () => AbortSignal.timeout(2_000);
      expect(await httpProbe({ expectedStatuses: [204] })({ ...targetAt(port), protocol: 'h2c' }, signal())).toEqual({ healthy: true, detail: 'status 204' });
      // A grpc target gets the standard gRPC health check instead, which this server does not serve.
      expect(await httpProbe({ expectedStatuses: [204] })({ ...targetAt(port), protocol: 'grpc' }, signal())).toEqual({ healthy: false, detail: 'status 404' });
      expect((await httpProbe({ expectedStatuses: [204] })(targetAt(port), signal())).healthy).toBe(false);
      expect(seen).toEqual([`2.0 /health 127.0.0.1:${port}`, `2.0 /grpc.health.v1.Health/Check 127.0.0.1:${port}`]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails with the connection\'s own error, not the cancel of its pending stream, when an h2c or grpc target refuses', async () => {
    const port = await freePort();
    for (const protocol of ['h2c', 'grpc'] as const) {
      expect(await httpProbe()({ ...targetAt(port), protocol }, AbortSignal.timeout(2_000))).toEqual({ healthy: false, detail: 'ECONNREFUSED' });
    }
  });

  it('settles as a timeout when an h2c target accepts but never answers', async () => {
    const server = createTcpServer((socket) => socket.resume());
    silent.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const target = { ...targetAt((server.address() as AddressInfo).port), protocol: 'h2c' as const };
    expect(await httpProbe()(target, AbortSignal.timeout(50))).toEqual({ healthy: false, detail: 'timeout' });
  });
});

describe('tcpProbe', () => {
  it('passes when a connection opens', async () => {
    const backend = await startSwitchableBackend();
    try {
      expect(await tcpProbe()(backend.target, new AbortController().signal)).toEqual({ healthy: true, detail: 'connected' });
    } finally {
      await backend.close();
    }
  });

  it('fails with ECONNREFUSED when nothing listens', async () => {
    expect(await tcpProbe()(targetAt(await freePort()), new AbortController().signal)).toEqual({ healthy: false, detail: 'ECONNREFUSED' });
  });
});

describe('probeOnPort', () => {
  it('checks the management port of the instance\'s host and names that port in the default Host', async () => {
    const management = await startSwitchableBackend();
    try {
      // The traffic port refuses: a check of it would fail.
      const instance = targetAt(await freePort());
      const checked = await probeOnPort(httpProbe(), management.target.port)(instance, new AbortController().signal);
      expect(checked).toEqual({ healthy: true, detail: 'status 200' });
      expect(management.requests).toEqual([{ path: '/health', host: `127.0.0.1:${management.target.port}` }]);
      expect(await probeOnPort(tcpProbe(), management.target.port)(instance, new AbortController().signal)).toEqual({ healthy: true, detail: 'connected' });
    } finally {
      await management.close();
    }
  });

  it('fails when the management port refuses, though the traffic port answers', async () => {
    const traffic = await startSwitchableBackend();
    try {
      const probe = probeOnPort(httpProbe(), await freePort());
      expect(await probe(traffic.target, new AbortController().signal)).toEqual({ healthy: false, detail: 'ECONNREFUSED' });
      expect(traffic.requests).toEqual([]);
    } finally {
      await traffic.close();
    }
  });
});
