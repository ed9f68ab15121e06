import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { AttemptResult } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';

const listen = async (server: Server | Http2Server | ReturnType<typeof createTcpServer>) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** A free loopback port: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('Http2Transport', () => {
  const sessions: ServerHttp2Session[] = [];
  let backend: Http2Server;
  let backendPort: number;
  let transport: Http2Transport | undefined;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;

  beforeAll(async () => {
    backend = createHttp2Server((request, response) => {
      if (request.url === '/silent') return; // never answers
      request.resume();
      response.end(`answered on session ${sessions.indexOf(request.stream.session as ServerHttp2Session)}`);
      if (request.url === '/goaway') request.stream.session?.close();
    });
    backend.on('session', (session) => sessions.push(session));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      let outcome: UpstreamOutcome | undefined;
      const pick = { kind: 'endpoint', address: 'backend', instance: {}, done: (reported: UpstreamOutcome) => (outcome ??= reported) } as unknown as PickedEndpoint;
      last = transport!.attempt(context, pick, { headersTimeoutMs: 300, bodyTimeoutMs: 2_000 }, null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome! };
      });
    });
    await listen(gateway);
  });
  afterEach(async () => {
    await transport?.close();
    transport = undefined;
  });
  afterAll(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  async function exchange(path: string) {
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path).then(({ status, body }) => ({ status, body: body.toString('utf8') }));
    return { ...answer, ...(await last) };
  }

  const h2c = (port: number) => new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 1_000, tls: undefined });

  it('multiplexes requests on one session and opens a new one after the upstream sent GOAWAY', async () => {
    transport = h2c(backendPort);
    const first = sessions.length;
    expect((await exchange('/a')).body).toBe(`answered on session ${first}`);
    expect((await exchange('/goaway')).body).toBe(`answered on session ${first}`);
    const after = await exchange('/b');
    expect(after).toMatchObject({ status: 200, body: `answered on session ${first + 1}`, outcome: { ok: true } });
  });

  it('fails with connect-refused, counted against the upstream, when nothing listens', async () => {
    transport = h2c(await closedPort());
    const result = await exchange('/');
    expect(result.status).toBe(502);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'connect-refused' });
    expect(result.outcome).toMatchObject({ ok: false, errorClass: 'connect-refused' });
  });

  it('fails with headers-timeout (504) when the upstream does not answer in time, and cancels the stream', async () => {
    transport = h2c(backendPort);
    const started = performance.now();
    const result = await exchange('/silent');
    expect(result.status).toBe(504);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('fails with upstream-protocol when the peer does not speak HTTP/2', async () => {
    const http1Only = createServer((_request, response) => response.end('HTTP/1.1 only'));
    try {
      transport = h2c(await listen(http1Only));
      const result = await exchange('/');
      expect(result.status).toBe(502);
      expect(result.result).toMatchObject({ ok: false });
      expect((result.result as { errorClass: string; error: Error }).errorClass, String((result.result as { error: Error }).error?.stack)).toBe('upstream-protocol');
    } finally {
      http1Only.closeAllConnections();
      await new Promise((resolve) => http1Only.close(resolve));
    }
  });
});
