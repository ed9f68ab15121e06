import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../../test/harness/certificates.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { isUpstreamFailure } from '../../src/health/upstream-outcome.ts';
import { accessLogText } from '../middleware/access-log/index.ts';
import { sendTestRequest } from '../middleware/middleware-testing.ts';
import { NEVER_SENT } from '../transports/transport-outcome.ts';
import type { ProxyPolicy } from './proxy.ts';
import { TEST_PROXY_POLICY, testGateway } from './proxy-testing.ts';

const SERVER_NAME = 'upstream.test';
const DEADLINE_MS = 200;

const listen = async (server: Server | Http2SecureServer | TcpServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/**
 * An upstream whose connections open only when the test says: a TCP listener that accepts each
 * connection and forwards none of it (the gateway's TLS handshake hangs after its ClientHello)
 * until `release` pipes the held connections to `targetPort`, or `reset` resets them.
 */
function holdingRelay(targetPort: number) {
  const held: Socket[] = [];
  const server = createTcpServer((socket) => {
    socket.on('error', () => undefined);
    socket.pause();
    held.push(socket);
  });
  return {
    server,
    held,
    release(): void {
      for (const socket of held.splice(0)) {
        const onward = connect(targetPort, '127.0.0.1');
        onward.on('error', () => socket.destroy());
        socket.on('close', () => onward.destroy());
        socket.pipe(onward).pipe(socket);
      }
    },
    reset(): void {
      for (const socket of held.splice(0)) socket.resetAndDestroy();
    },
  };
}

describe("a gRPC call whose deadline passes while its TLS connection to the instance is still opening, over HTTP/1.1 (https) and HTTP/2 (h2) alike", () => {
  let dir: string;
  const backends: { close(): void; closeAllConnections?(): void }[] = [];
  const relays: ReturnType<typeof holdingRelay>[] = [];
  let counts: Record<'https' | 'h2', { connections: number; requests: number }>;
  let relayFor: Record<'https' | 'h2', ReturnType<typeof holdingRelay>>;
  let relayPorts: Record<'https' | 'h2', number>;
  let ca: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-deadline-unsent-'));
    const authority = await createTestCa(dir);
    const issued = await authority.issue('upstream', SERVER_NAME);
    const tls = { cert: await readFile(issued.certFile), key: await readFile(issued.keyFile) };
    ca = await readFile(authority.caFile, 'utf8');
    counts = { https: { connections: 0, requests: 0 }, h2: { connections: 0, requests: 0 } };
    const https = createHttpsServer(tls, (_request, response) => {
      counts.https.requests += 1;
      response.end('answered');
    });
    https.on('secureConnection', () => (counts.https.connections += 1));
    const h2 = createSecureServer(tls, (_request, response) => {
      counts.h2.requests += 1;
      response.end('answered');
    });
    h2.on('secureConnection', () => (counts.h2.connections += 1));
    backends.push(https, h2);
    relayFor = { https: holdingRelay(await listen(https)), h2: holdingRelay(await listen(h2)) };
    relays.push(relayFor.https, relayFor.h2);
    relayPorts = { https: await listen(relayFor.https.server), h2: await listen(relayFor.h2.server) };
  });
  afterAll(async () => {
    for (const relay of relays) {
      relay.reset();
      relay.server.close();
    }
    for (const backend of backends) {
      backend.closeAllConnections?.();
      backend.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * A gateway for service `svc` whose one instance speaks `protocol` behind its relay (`testGateway`),
   * balanced by p2c-ewma (which takes latency samples) with outlier detection ejecting at one
   * failure; every outcome reported to a pick is kept in `reports` on its way to the balancer, every
   * request's access log line in `lines` once its attempt loop ends.
   */
  async function gatewayFor(protocol: 'https' | 'h2') {
    // A connect timeout far beyond the deadline: the connection opens when the test releases it.
    const policy: ProxyPolicy = { ...TEST_PROXY_POLICY, connection: { ...TEST_PROXY_POLICY.connection, connectTimeoutMs: 30_000, tls: { ...TEST_PROXY_POLICY.connection.tls, ca, serverName: SERVER_NAME }, key: 'deadline-unsent' } };
    const lines: string[] = [];
    const gateway = await testGateway({ protocol, port: relayPorts[protocol], algorithm: 'p2c-ewma', policy, finished: (context) => lines.push(accessLogText(context, false)) });
    const call = (deadline: string | undefined) =>
      sendTestRequest(gateway.port, '/svc.Echo/Say', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers', ...(deadline ? { 'grpc-timeout': deadline } : {}) }, body: '' });
    return { call, reports: gateway.reports, lines, ejected: gateway.ejected, close: gateway.close };
  }

  it.each(['https', 'h2'] as const)(
    'over %s answers DEADLINE_EXCEEDED at the deadline, logs 504 deadline-exceeded with the time waited, and releases the pick unused once the connection opens: no latency sample, no health count, nothing sent, the connection kept',
    async (protocol) => {
      const gateway = await gatewayFor(protocol);
      const relay = relayFor[protocol];
      const before = { ...counts[protocol] };
      try {
        const started = performance.now();
        const answer = await gateway.call(`${DEADLINE_MS}m`);
        const answeredMs = performance.now() - started;
        // The gateway's gRPC answer: HTTP 200, Trailers-Only with grpc-status 4 (DEADLINE_EXCEEDED).
        expect(answer.status).toBe(200);
        expect(answer.headers['grpc-status']).toBe('4');
        await waitFor(() => gateway.lines.length === 1);
        const line = JSON.parse(gateway.lines[0]!) as { status: number; errorClass: string; durationMs: number; grpcStatus?: number };
        expect(line).toMatchObject({ status: 504, errorClass: 'deadline-exceeded' });
        // The time the call waited: its deadline, not the connection's opening (still held).
        expect(line.durationMs).toBeGreaterThanOrEqual(DEADLINE_MS - 1);
        expect(line.durationMs).toBeLessThanOrEqual(answeredMs);
        // The connection is still opening: the pick waits for its fate.
        await waitFor(() => relay.held.length === 1);
        expect(gateway.reports).toEqual([]);
        relay.release();
        await waitFor(() => gateway.reports.length === 1);
        // Reported as deadline-exceeded with the time to connect, p2c-ewma would take the wait as the instance's latency.
        expect(gateway.reports).toEqual([NEVER_SENT]);
        expect(isUpstreamFailure(gateway.reports[0]!)).toBe(false);
        expect(counts[protocol].requests).toBe(before.requests);
        await waitFor(() => counts[protocol].connections === before.connections + 1);
        // The connection opened after the deadline serves the next call, and the instance was never ejected.
        const next = await gateway.call(undefined);
        expect(`${next.status} ${next.body.toString('utf8')}`).toBe('200 answered');
        expect(counts[protocol]).toEqual({ connections: before.connections + 1, requests: before.requests + 1 });
        expect(gateway.ejected()).toBe(false);
      } finally {
        await gateway.close();
      }
    },
  );

  it.each(['https', 'h2'] as const)('over %s still counts a connection that fails after the deadline against the instance (the control)', async (protocol) => {
    const gateway = await gatewayFor(protocol);
    const relay = relayFor[protocol];
    try {
      const answer = await gateway.call(`${DEADLINE_MS}m`);
      expect(answer.headers['grpc-status']).toBe('4');
      await waitFor(() => gateway.lines.length === 1);
      expect(JSON.parse(gateway.lines[0]!)).toMatchObject({ status: 504, errorClass: 'deadline-exceeded' });
      await waitFor(() => relay.held.length === 1);
      expect(gateway.reports).toEqual([]);
      relay.reset();
      await waitFor(() => gateway.reports.length === 1);
      expect(gateway.reports[0]).toMatchObject({ ok: false, errorClass: 'reset-before-headers' });
      expect(isUpstreamFailure(gateway.reports[0]!)).toBe(true);
      await waitFor(() => gateway.ejected() === true);
    } finally {
      await gateway.close();
    }
  });
});
