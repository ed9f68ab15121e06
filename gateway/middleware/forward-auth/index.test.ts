import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GatewayContext, Middleware } from '../../context.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { accessDeniedTotal } from '../consumers/index.ts';
import { arrivals, fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { forwardAuth } from './index.ts';

const denials = async (reason: string) => (await accessDeniedTotal.get()).values.find((value) => value.labels.reason === reason)?.value ?? 0;

/** A real auth service on port 0: `/check` answers 204 with X-Auth-User, unless the request's `x-hold` header asks it to hold the check. */
interface AuthService {
  readonly address: string;
  /** Checks it holds unanswered, each with whether its connection closed before an answer. */
  readonly held: { response: ServerResponse; abandoned: boolean }[];
  close(): Promise<void>;
}

async function startAuthService(): Promise<AuthService> {
  const held: AuthService['held'] = [];
  const server: Server = createServer((request, response) => {
    if (request.headers['x-hold'] === undefined) return void response.writeHead(204, { 'x-auth-user': 'ada' }).end();
    const check = { response, abandoned: false };
    held.push(check);
    response.on('close', () => (check.abandoned = !response.writableEnded));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`,
    held,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('forwardAuth', () => {
  let auth: AuthService;
  let server: MiddlewareServer | undefined;
  /** Paths that reached the fake proxy in this test (a fresh list each: a check of an earlier test cannot land in it). */
  let reached: string[];
  let countingProxy: (context: GatewayContext) => Promise<void>;

  beforeEach(async () => {
    auth = await startAuthService();
    const [paths, proxy] = [[] as string[], fakeProxy()];
    reached = paths;
    countingProxy = async (context) => {
      paths.push(context.upstream.path);
      await proxy(context);
    };
  });
  afterEach(async () => {
    for (const check of auth.held) check.response.end();
    await server?.close();
    server = undefined;
    await auth.close();
  });

  it('ends the check at once when the client leaves before the verdict: the auth request aborted, nothing sent on, 499 cancelled, no refusal counted', async () => {
    const arrived = arrivals();
    server = await serveMiddleware([arrived.layer, forwardAuth({ address: auth.address, authResponseHeaders: [], timeoutMs: 60_000 })], countingProxy);
    const unavailableBefore = await denials('auth-unavailable');
    const client = httpRequest({ host: '127.0.0.1', port: server.port, path: '/gone', headers: { 'x-hold': '1' }, agent: false });
    client.on('error', () => {});
    client.end();
    const context = await arrived.next();
    const listening = context.response.listenerCount('close');
    await waitFor(() => auth.held.length === 1, { timeoutMs: 5_000, message: 'the auth service to get the check' });
    client.destroy();
    await waitFor(() => auth.held[0]!.abandoned, { timeoutMs: 5_000, message: 'the check to be aborted' });
    await waitFor(() => context.outcome.status === 499, { timeoutMs: 5_000, message: 'the request to be recorded' });
    expect(context.outcome.errorClass).toBe('cancelled');
    expect(reached).toEqual([]);
    expect(await denials('auth-unavailable')).toBe(unavailableBefore);
    // Its watch is over: the check's 'close' listener went with it.
    expect(context.response.listenerCount('close')).toBeLessThan(listening);
  });

  it('lets a passed request on with the auth service\'s headers, its close listener taken off before the layers after it run', async () => {
    let listeningInside = -1;
    const inner = async (context: GatewayContext) => {
      listeningInside = context.response.listenerCount('close');
      await countingProxy(context);
    };
    let listeningBefore = -1;
    const before: Middleware = (context, next) => {
      listeningBefore = context.response.listenerCount('close');
      return next();
    };
    server = await serveMiddleware([before, forwardAuth({ address: auth.address, authResponseHeaders: ['x-auth-user'], timeoutMs: 5_000 })], inner);
    const answer = await server.send('/passed');
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body.toString()) as { headers: Record<string, string> }).headers['x-auth-user']).toBe('ada');
    expect(reached).toEqual(['/passed']);
    expect(listeningInside).toBe(listeningBefore);
  });

  it('adds no listener to the connection for pipelined checks waiting behind another (no MaxListenersExceededWarning)', async () => {
    server = await serveMiddleware([forwardAuth({ address: auth.address, authResponseHeaders: [], timeoutMs: 60_000 })], countingProxy);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.name);
    process.on('warning', onWarning);
    const client = connect({ host: '127.0.0.1', port: server.port });
    client.on('error', () => {});
    try {
      // Node gives the first its connection; the other 19 wait behind it, each watching its own response (the gateway's
      // listener closes a queued response with its connection: gateway-policy-client-faults.test.ts shows them aborted).
      client.write('GET /pipelined HTTP/1.1\r\nhost: gateway\r\nx-hold: 1\r\n\r\n'.repeat(20));
      await waitFor(() => auth.held.length === 20, { timeoutMs: 10_000, message: 'the auth service to get all 20 checks' });
      const connection = server.contexts[0]!.request.socket as Socket;
      expect(connection.listenerCount('close')).toBeLessThan(10);
      expect(warnings.filter((name) => name === 'MaxListenersExceededWarning')).toEqual([]);
      expect(reached).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      client.destroy();
    }
  });

  it('refuses with 502 auth-unavailable at its timeout, the auth request aborted', async () => {
    // 1 s, not less: the check must reach the auth service before it times out, or nothing there is aborted (a loaded machine may stall a few hundred ms).
    server = await serveMiddleware([forwardAuth({ address: auth.address, authResponseHeaders: [], timeoutMs: 1_000 })], countingProxy);
    const unavailableBefore = await denials('auth-unavailable');
    const answer = await server.send('/late', { headers: { 'x-hold': '1' } });
    expect([answer.status, (JSON.parse(answer.body.toString()) as { error: string }).error]).toEqual([502, 'auth-unavailable']);
    await waitFor(() => auth.held[0]?.abandoned, { timeoutMs: 5_000, message: 'the check that timed out to be aborted' });
    expect(reached).toEqual([]);
    expect(await denials('auth-unavailable')).toBe(unavailableBefore + 1);
  });
});
