import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestCa } from '../../test/harness/certificates.ts';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { DEFAULT_POOL_SETTINGS, Http1Transport } from './transport-http1.ts';
import { until } from './transport-http2-testing.ts';

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('Http1Transport', () => {
  const servers: Server[] = [];
  let transport: Http1Transport | undefined;
  afterEach(async () => {
    await transport?.close();
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("keeps an idle socket as long as the backend's Keep-Alive hint says, beyond the keep-alive used without a hint", async () => {
    // The backend keeps idle sockets 10 s and says so (`Keep-Alive: timeout=10`); it counts connections.
    const connections: Socket[] = [];
    const backend = createServer((_request, response) => response.end('ok'));
    backend.keepAliveTimeout = 10_000;
    backend.on('connection', (socket: Socket) => connections.push(socket));
    servers.push(backend);
    const address = `127.0.0.1:${await listen(backend)}`;
    const idleWithoutHintMs = 50;
    transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, { keepAliveTimeoutMs: idleWithoutHintMs, keepAliveMaxTimeoutMs: 60_000, connections: 1 });
    const upstream = transport;
    const gateway = createServer((request, response) => {
      const context: GatewayContext = initialContext(request, response);
      const pick = { kind: 'endpoint', address, instance: {}, done: () => undefined, answered: () => undefined } as unknown as PickedEndpoint;
      void upstream.attempt(context, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null);
    });
    servers.push(gateway);
    const port = await listen(gateway);

    expect((await sendTestRequest(port, '/')).status).toBe(200);
    // Idle for many times the hint-less keep-alive (a capped hint closed the socket after 50 ms here).
    await new Promise((resolve) => setTimeout(resolve, 10 * idleWithoutHintMs));
    expect((await sendTestRequest(port, '/')).status).toBe(200);
    expect(connections).toHaveLength(1);
    expect(connections[0]!.destroyed).toBe(false);
  });

  it("sends the configured server name as SNI and checks the certificate against it, whatever Host the client sent", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-upstream-sni-'));
    try {
      const ca = await createTestCa(dir);
      const issued = await ca.issue('backend', 'backend.test');
      const tlsConnections: string[] = [];
      const backend = createHttpsServer({ cert: readFileSync(issued.certFile), key: readFileSync(issued.keyFile) }, (request, response) => {
        response.end((request.socket as TLSSocket).servername || '(none)');
      });
      backend.on('secureConnection', (socket: TLSSocket) => tlsConnections.push(socket.servername || '(none)'));
      servers.push(backend);
      const address = `127.0.0.1:${await listen(backend)}`;
      const tls = { ca: readFileSync(ca.caFile, 'utf8'), cert: undefined, key: undefined, serverName: 'backend.test', verify: true };
      transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls }, { ...DEFAULT_POOL_SETTINGS, connections: 1 });
      const upstream = transport;
      const gateway = createServer((request, response) => {
        const pick = { kind: 'endpoint', address, instance: {}, done: () => undefined, answered: () => undefined } as unknown as PickedEndpoint;
        void upstream.attempt(initialContext(request, response), pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null).then((result) => {
          if (!result.ok) response.writeHead(502).end(`${result.errorClass}: ${result.error.message}`);
        });
      });
      servers.push(gateway);
      const port = await listen(gateway);

      // Public names the certificate does not carry: undici took the SNI from them and the handshake failed (502).
      for (const host of ['api.example.com', 'evil.example', 'api.example.com']) {
        const answer = await sendTestRequest(port, '/', { headers: { host } });
        expect(answer.status, `Host: ${host}: ${answer.body.toString()}`).toBe(200);
        expect(answer.body.toString()).toBe('backend.test');
      }
      expect(tlsConnections).toEqual(['backend.test']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Http1Transport after close', () => {
  it('fails an attempt on its closed pool as pool-closed, the gateway shutting down, not the instance', async () => {
    const backend = createServer((_request, response) => response.end('ok'));
    const address = `127.0.0.1:${await listen(backend)}`;
    const transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, DEFAULT_POOL_SETTINGS);
    await transport.close();
    const outcomes: unknown[] = [];
    const gateway = createServer((request, response) => {
      const context: GatewayContext = initialContext(request, response);
      const pick = { kind: 'endpoint', address, instance: {}, done: (outcome: unknown) => outcomes.push(outcome), answered: () => undefined } as unknown as PickedEndpoint;
      void transport.attempt(context, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null).then((result) => {
        response.end(JSON.stringify(result.ok ? { ok: true } : { errorClass: result.errorClass }));
      });
    });
    const port = await listen(gateway);
    try {
      const answer = await sendTestRequest(port, '/');
      expect(JSON.parse(answer.body.toString())).toEqual({ errorClass: 'pool-closed' });
      expect(outcomes).toHaveLength(1);
      // The health class the pick is told: the gateway's own, counted against no instance.
      expect(outcomes[0]).toMatchObject({ ok: false, errorClass: 'internal' });
    } finally {
      for (const server of [gateway, backend]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });

  it("stops waiting for a request whose upstream never answers, and one queued behind it, after the grace close() is given, failing both as pool-closed, counted against nobody", async () => {
    let received = 0;
    let dispatched = 0;
    const silent = createServer(() => (received += 1));
    const address = `127.0.0.1:${await listen(silent)}`;
    // One connection: the second request waits in undici's queue, whose close() resolves only once that queue drains.
    const transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, { ...DEFAULT_POOL_SETTINGS, connections: 1 });
    const outcomes: unknown[] = [];
    const gateway = createServer((request, response) => {
      dispatched += 1;
      const pick = { kind: 'endpoint', address, instance: {}, done: (outcome: unknown) => outcomes.push(outcome), answered: () => undefined } as unknown as PickedEndpoint;
      // Timeouts long enough that only the close can end the attempt within the test.
      void transport.attempt(initialContext(request, response), pick, { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 }, null).then((result) => {
        response.end(JSON.stringify(result.ok ? { ok: true } : { errorClass: result.errorClass }));
      });
    });
    const port = await listen(gateway);
    try {
      const answer = sendTestRequest(port, '/never');
      expect(await until(() => received === 1, 3_000), 'the upstream received the request').toBe(true);
      const queued = sendTestRequest(port, '/queued');
      expect(await until(() => dispatched === 2, 3_000), 'the second request queued').toBe(true);
      const graceMs = 200;
      const started = performance.now();
      let closedAfterMs: number | undefined;
      void transport.close(graceMs).then(() => (closedAfterMs = performance.now() - started));
      // Without a bound undici's close waits for the answer, which never comes.
      expect(await until(() => closedAfterMs !== undefined, 3_000), 'the pool closed').toBe(true);
      expect(closedAfterMs).toBeGreaterThanOrEqual(graceMs - 1);
      expect(JSON.parse((await answer).body.toString())).toEqual({ errorClass: 'pool-closed' });
      expect(JSON.parse((await queued).body.toString())).toEqual({ errorClass: 'pool-closed' });
      expect(received).toBe(1);
      expect(outcomes).toEqual([expect.objectContaining({ ok: false, errorClass: 'internal' }), expect.objectContaining({ ok: false, errorClass: 'internal' })]);
    } finally {
      for (const server of [gateway, silent]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });
});
