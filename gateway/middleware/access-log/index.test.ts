import { request as httpRequest, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/harness/wait.ts';
import type { Middleware } from '../../context.ts';
import { forwarded } from '../forwarded/index.ts';
import { fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { requestId } from '../request-id/index.ts';
import { rewrite } from '../rewrite/index.ts';
import { accessLog, accessLogDestination } from './index.ts';

/** An access logger whose lines land in `lines`, parsed. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = { write: (batch: string) => lines.push(...batch.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)) };
  return { lines, logger: accessLogDestination(sink) };
}

const routed: Middleware = async (context, next) => {
  context.routeName = 'users';
  context.service = 'user';
  await next();
};

describe('accessLog', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('writes one JSON line per request with the request, the outcome and who asked', async () => {
    const { lines, logger } = capturingLogger();
    server = await serveMiddleware([requestId(), forwarded(), accessLog({ logger }), routed, rewrite({ pattern: '^/old', replacement: '/new' })]);
    const response = await server.send('/old/page?q=1', { method: 'POST', headers: { 'x-request-id': 'req-1' } });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({
      method: 'POST',
      path: '/old/page?q=1',
      status: 200,
      bytes: response.body.length,
      upstream: '127.0.0.1:1',
      attempts: 1,
      route: 'users',
      service: 'user',
      requestId: 'req-1',
      clientIp: '127.0.0.1',
    });
    expect(lines[0]!.durationMs).toBeTypeOf('number');
    expect(lines[0]!.errorClass).toBeUndefined();
    expect(lines[0]!.aborted).toBeUndefined();
  });

  it('waits for a response streamed after the inner layers returned before it logs', async () => {
    const { lines, logger } = capturingLogger();
    let finishBody: () => void = () => undefined;
    server = await serveMiddleware([accessLog({ logger })], async (context) => {
      context.response.writeHead(200, { 'content-type': 'text/plain' });
      (context.response as ServerResponse).write('first ');
      finishBody = () => {
        context.outcome = { status: 200, attempts: 1, bytesOut: 11 };
        context.response.end('last');
      };
    });
    const pending = server.send('/stream');
    await waitFor(() => server.contexts.length === 1 && server.contexts[0]!.response.headersSent);
    expect(lines).toHaveLength(0);
    finishBody();
    await pending;
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ status: 200, bytes: 11 });
  });

  it('logs a layer that threw as an internal error and lets the error through', async () => {
    const { lines, logger } = capturingLogger();
    const broken: Middleware = async () => {
      throw new Error('boom');
    };
    server = await serveMiddleware([accessLog({ logger }), broken]);
    const response = await server.send('/');
    expect(response.headers['x-error']).toBe('boom');
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ status: 500, errorClass: 'internal' });
  });

  it('marks a request whose client went away before the response ended as aborted', async () => {
    const { lines, logger } = capturingLogger();
    server = await serveMiddleware([accessLog({ logger })], async (context) => {
      context.response.writeHead(200);
      (context.response as ServerResponse).write('partial');
    });
    await new Promise<void>((resolve, reject) => {
      const outgoing = httpRequest({ host: '127.0.0.1', port: server.port, path: '/', agent: false }, (response) => {
        response.once('data', () => {
          outgoing.destroy();
          resolve();
        });
      });
      outgoing.on('error', (error) => (outgoing.destroyed ? undefined : reject(error)));
      outgoing.end();
    });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ status: 200, aborted: true });
  });

  it('logs the status the fake proxy recorded for a gateway error', async () => {
    const { lines, logger } = capturingLogger();
    server = await serveMiddleware([accessLog({ logger })], async (context) => {
      await fakeProxy({ status: 503 })(context);
      context.outcome.errorClass = 'no-instances';
    });
    expect((await server.send('/')).status).toBe(503);
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ status: 503, errorClass: 'no-instances' });
  });
});
