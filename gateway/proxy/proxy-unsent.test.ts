import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import type { InstanceProtocol } from '../../src/discovery/instance.ts';
import { isUpstreamFailure } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { sendTestRequest } from '../middleware/middleware-testing.ts';
import { InstanceTraffic } from '../telemetry/instance-traffic.ts';
import type { TransportSettings } from '../transports/index.ts';
import type { ProxyPolicy } from './proxy.ts';
import { TEST_PROXY_POLICY, testGateway } from './proxy-testing.ts';

const listen = async (server: Server | Http2Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** A backend that counts the requests it saw and holds `/hold` until the test answers it. */
interface CountingBackend {
  readonly port: number;
  readonly held: (() => void)[];
  readonly requests: () => number;
  close(): Promise<void>;
}

/** Starts a `CountingBackend` over HTTP/1.1, or over h2c taking one stream at a time per session. */
async function startBackend(protocol: 'http' | 'h2c'): Promise<CountingBackend> {
  const held: (() => void)[] = [];
  let requests = 0;
  const handler = (request: { url?: string; resume(): void }, response: { end(body: string): void }) => {
    requests += 1;
    request.resume();
    const answer = () => response.end('upstream body');
    if (request.url === '/hold') held.push(answer);
    else answer();
  };
  const server = protocol === 'http' ? createServer(handler) : createHttp2Server({ settings: { maxConcurrentStreams: 1 } }, handler);
  const port = await listen(server);
  return {
    port,
    held,
    requests: () => requests,
    close: async () => {
      for (const answer of held.splice(0)) answer();
      if ('closeAllConnections' in server) server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A gateway for service `svc` with one instance speaking `protocol` on `port` (`testGateway`: a real
 * round-robin balancer with outlier detection ejecting at one failure, real transports) and the real
 * per-instance counters (InstanceTraffic, the admin API's and the flow statistics' `requests` and
 * `errors`). `prepare` edits each request's context before the proxy (as a middleware would);
 * `outcomes` keeps each finished request's outcome, `reports` what each attempt told its pick.
 */
async function gatewayFor(protocol: InstanceProtocol, port: number, connection: Partial<TransportSettings> = {}, prepare: (context: GatewayContext) => void = () => undefined) {
  const address = `127.0.0.1:${port}`;
  const policy: ProxyPolicy = { ...TEST_PROXY_POLICY, connection: { ...TEST_PROXY_POLICY.connection, ...connection, key: JSON.stringify(connection) } };
  const traffic = new InstanceTraffic();
  const outcomes: GatewayContext['outcome'][] = [];
  let entered = 0;
  const gateway = await testGateway({
    protocol,
    port,
    algorithm: 'round-robin',
    policy,
    observer: traffic,
    prepare: (context) => {
      prepare(context);
      entered += 1;
    },
    finished: (context) => outcomes.push(context.outcome),
  });
  return {
    /** The status and the body, parsed when it is the gateway's JSON error. */
    send: (path: string) =>
      sendTestRequest(gateway.port, path).then(({ status, body }) => {
        const text = body.toString('utf8');
        return { status, body: text.startsWith('{') ? (JSON.parse(text) as unknown) : text };
      }),
    outcomes,
    reports: gateway.reports,
    /** Requests handed to the proxy so far: each has made its first attempt (the proxy starts it synchronously). */
    entered: () => entered,
    transports: gateway.transports,
    /** The instance's `requests` and `errors`. */
    counts: () => traffic.counts('svc', address),
    ejected: gateway.ejected,
    close: gateway.close,
  };
}

/** A request whose headers `prepare` makes unsendable: 400 `request-rejected`, the outcome unsent, nothing counted or sent. */
async function expectRejectedUnsent(protocol: 'http' | 'h2c', backend: CountingBackend, prepare: (context: GatewayContext) => void): Promise<void> {
  const gateway = await gatewayFor(protocol, backend.port, {}, prepare);
  const before = backend.requests();
  try {
    expect(await gateway.send('/')).toMatchObject({ status: 400, body: { error: 'request-rejected' } });
    await waitFor(() => gateway.outcomes.length === 1);
    expect(gateway.outcomes[0]).toMatchObject({ errorClass: 'request-rejected', upstream: expect.any(String), attempts: 1, unsent: true });
    expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
    expect(gateway.reports).toHaveLength(1);
    expect(isUpstreamFailure(gateway.reports[0]!)).toBe(false);
    expect(gateway.ejected()).toBe(false);
    expect(backend.requests()).toBe(before);
  } finally {
    for (const answer of backend.held.splice(0)) answer();
    await gateway.close();
  }
}

/**
 * One request held by the instance's only connection or stream, a second waiting behind it, then the
 * gateway closes its pool with no grace: the waiting one fails first (503 `pool-closed`, unsent), then
 * the held one is cut; only the held one, which reached the instance, is its request, and neither a failure.
 */
async function expectPoolClosedCountsOnlySent(protocol: 'http' | 'h2c', backend: CountingBackend): Promise<void> {
  const gateway = await gatewayFor(protocol, backend.port, { maxConnections: 1, connectTimeoutMs: 30_000 });
  const before = backend.requests();
  try {
    const holding = gateway.send('/hold');
    await waitFor(() => backend.held.length === 1);
    const waiting = gateway.send('/');
    await waitFor(() => gateway.entered() === 2);
    const closing = gateway.transports.close(0);
    expect(await waiting).toMatchObject({ status: 503, body: { error: 'pool-closed' } });
    expect((await holding).status).toBe(503);
    await closing;
    await waitFor(() => gateway.outcomes.length === 2);
    const byUnsent = gateway.outcomes.map((outcome) => `${outcome.errorClass} ${outcome.unsent === true ? 'unsent' : 'sent'}`).sort();
    expect(byUnsent).toEqual(['pool-closed sent', 'pool-closed unsent']);
    expect(gateway.counts()).toEqual({ requests: 1, errors: 0 });
    expect(gateway.reports.some(isUpstreamFailure)).toBe(false);
    expect(backend.requests()).toBe(before + 1);
  } finally {
    for (const answer of backend.held.splice(0)) answer();
    await gateway.close();
  }
}

describe('the attempt loop with real transports: an HTTP/2 attempt whose request never left the gateway is none of the instance\'s requests, and no failure of its', () => {
  let backend: CountingBackend;

  beforeAll(async () => {
    backend = await startBackend('h2c');
  });
  afterAll(async () => {
    await backend.close();
  });

  it('counts no request for headers node:http2 refuses to send (its request() throws): 400 request-rejected, the outcome unsent', async () => {
    // Two Content-Type values, as a middleware could set them: node:http2 throws ERR_HTTP2_HEADER_SINGLE_VALUE before opening a stream.
    await expectRejectedUnsent('h2c', backend, (context) => ((context.upstream.headers as Record<string, string | string[]>)['content-type'] = ['text/plain', 'text/html']));
  });

  it("counts no request for one the gateway's full pool refused (pool-overflow, 503), and still counts the held one that took the only stream", async () => {
    // One session, one stream on it (the backend's limit); a request waits for a stream for the connect timeout.
    const gateway = await gatewayFor('h2c', backend.port, { maxConnections: 1, connectTimeoutMs: 300 });
    const before = backend.requests();
    try {
      const holding = gateway.send('/hold');
      await waitFor(() => backend.held.length === 1);
      expect(await gateway.send('/')).toMatchObject({ status: 503, body: { error: 'pool-overflow' } });
      await waitFor(() => gateway.outcomes.length === 1);
      expect(gateway.outcomes[0]).toMatchObject({ errorClass: 'pool-overflow', attempts: 1, unsent: true });
      expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
      backend.held.shift()!();
      expect((await holding).status).toBe(200);
      await waitFor(() => gateway.outcomes.length === 2);
      expect(gateway.outcomes[1]!.unsent).not.toBe(true);
      expect(gateway.counts()).toEqual({ requests: 1, errors: 0 });
      expect(gateway.reports.some(isUpstreamFailure)).toBe(false);
      expect(gateway.ejected()).toBe(false);
      expect(backend.requests()).toBe(before + 1);
    } finally {
      for (const answer of backend.held.splice(0)) answer();
      await gateway.close();
    }
  });

  it('counts no request for one still waiting for a stream when the gateway closes its pool (pool-closed, 503), and counts the one it cut after sending it', async () => {
    await expectPoolClosedCountsOnlySent('h2c', backend);
  });
});

describe("the attempt loop with real transports: an HTTP/1.1 attempt whose request never left the gateway is none of the instance's requests, and no failure of its", () => {
  let backend: CountingBackend;

  beforeAll(async () => {
    backend = await startBackend('http');
  });
  afterAll(async () => {
    await backend.close();
  });

  it('counts no request for a header undici refuses to send: 400 request-rejected, the outcome unsent', async () => {
    await expectRejectedUnsent('http', backend, (context) => (context.upstream.headers['x-bad'] = 'a\u0001b'));
  });

  it("counts no request for one queued for the instance's one connection when the gateway closes its pool (pool-closed, 503), and counts the one it cut after sending it", async () => {
    await expectPoolClosedCountsOnlySent('http', backend);
  });

  it('still counts a refused connection as the instance\'s failed attempt (the control): 502 connect-refused, not unsent', async () => {
    // A port nothing listens on: a closed backend's.
    const gone = await startBackend('http');
    await gone.close();
    const gateway = await gatewayFor('http', gone.port);
    try {
      expect(await gateway.send('/')).toMatchObject({ status: 502, body: { error: 'connect-refused' } });
      await waitFor(() => gateway.outcomes.length === 1);
      expect(gateway.outcomes[0]!.unsent).not.toBe(true);
      expect(gateway.counts()).toEqual({ requests: 1, errors: 1 });
      expect(isUpstreamFailure(gateway.reports[0]!)).toBe(true);
    } finally {
      await gateway.close();
    }
  });
});

describe('the attempt loop with real transports: a tcp instance behind an HTTP route', () => {
  it("counts no request: 502 unsupported-protocol, the outcome unsent, no failure of the instance's", async () => {
    const backend = await startBackend('http');
    const gateway = await gatewayFor('tcp', backend.port);
    try {
      expect(await gateway.send('/')).toMatchObject({ status: 502, body: { error: 'unsupported-protocol' } });
      await waitFor(() => gateway.outcomes.length === 1);
      expect(gateway.outcomes[0]).toMatchObject({ errorClass: 'unsupported-protocol', upstream: `127.0.0.1:${backend.port}`, attempts: 1, unsent: true });
      expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
      expect(gateway.reports.some(isUpstreamFailure)).toBe(false);
      expect(gateway.ejected()).toBe(false);
      expect(backend.requests()).toBe(0);
    } finally {
      await gateway.close();
      await backend.close();
    }
  });
});
