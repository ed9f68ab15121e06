import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { AttemptResult } from './transport.ts';
import { dispatchAttempt } from './transport-http1-attempt.ts';

/** What one proxied exchange produced on every side. */
interface Exchange {
  status: number;
  body: string;
  result: AttemptResult;
  outcome: UpstreamOutcome;
}

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('dispatchAttempt', () => {
  const seen: IncomingHttpHeaders[] = [];
  let backend: Server;
  let pool: Pool;
  let prepare: (context: GatewayContext) => void = () => undefined;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;

  beforeAll(async () => {
    backend = createServer((request, response) => {
      seen.push(request.headers);
      if (request.url === '/reset') return void request.socket.destroy();
      request.resume();
      request.on('end', () => response.end('upstream body'));
    });
    pool = new Pool(`http://127.0.0.1:${await listen(backend)}`);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      prepare(context);
      let outcome: UpstreamOutcome | undefined;
      const pick = { kind: 'endpoint', address: 'backend', instance: {}, done: (reported: UpstreamOutcome) => (outcome ??= reported) } as unknown as PickedEndpoint;
      last = dispatchAttempt(context, pool, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, request.headers['content-length'] ? request : null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome! };
      });
    });
    await listen(gateway);
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  async function exchange(path: string, edit: (context: GatewayContext) => void = () => undefined, headers: Record<string, string> = {}): Promise<Exchange> {
    prepare = edit;
    seen.length = 0;
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path, { method: 'POST', headers: { 'content-length': '5', ...headers }, body: 'hello' }).then(({ status, body }) => ({ status, body: body.toString('utf8') }));
    return { ...answer, ...(await last) };
  }

  it('does not forward Expect, which the gateway has answered itself', async () => {
    const result = await exchange('/', (context) => (context.upstream.headers.expect = '100-continue'));
    expect(result).toMatchObject({ status: 200, body: 'upstream body', outcome: { ok: true } });
    expect(seen[0]?.expect).toBeUndefined();
  });

  it.each([
    {
      name: 'a header undici refuses to send answers 400 request-rejected; the upstream sees nothing',
      path: '/',
      edit: (context: GatewayContext) => (context.upstream.headers['x-bad'] = 'a\u0001b'),
      status: 400,
      errorClass: 'request-rejected',
      reachedUpstream: false,
    },
    {
      name: 'a failing response transform answers 500 internal',
      path: '/',
      edit: (context: GatewayContext) =>
        context.responseBodyTransforms.push(() => {
          throw new Error('transform failed');
        }),
      status: 500,
      errorClass: 'internal',
      reachedUpstream: true,
    },
  ])('$name and never counts against the upstream', async ({ path, edit, status, errorClass, reachedUpstream }) => {
    const result = await exchange(path, edit);
    expect(result.status).toBe(status);
    expect(JSON.parse(result.body)).toMatchObject({ error: errorClass, status });
    expect(result.result).toMatchObject({ ok: false, errorClass });
    expect(result.outcome.errorClass).toBe(errorClass);
    expect(isUpstreamFailure(result.outcome)).toBe(false);
    expect(seen.length > 0).toBe(reachedUpstream);
  });

  it('still counts an upstream that closes the connection before answering', async () => {
    const result = await exchange('/reset');
    expect(result.status).toBe(502);
    expect(result.outcome.errorClass).toBe('reset-before-headers');
    expect(isUpstreamFailure(result.outcome)).toBe(true);
  });
});
