import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import type { ErrorsSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer, sendGatewayError } from '../../proxy/error-response.ts';
import { denyAccess } from '../consumers/index.ts';
import { createRequestRunner } from '../../request-handler.ts';
import { startResponseBody } from '../../transports/transport-response-body.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { errors } from './index.ts';

const PAGES = { '5xx': '<h1>5xx</h1>', '502': '<h1>502</h1>', '429': '<h1>slow down</h1>' };
/** An upstream error body larger than any buffer the gateway would keep: 4 MiB in 64 KiB chunks. */
const UPSTREAM_CHUNK = Buffer.alloc(64 * 1024, 'u');
const UPSTREAM_CHUNKS = 64;

/**
 * The centre of the onion as the transports run it: an upstream answer of the status in the path
 * (`/upstream/500`) through `startResponseBody`, its big body written with back-pressure, or the
 * gateway's own answer (`/own/no-instances`, `/own/429`).
 */
async function upstreamOrOwn(context: GatewayContext): Promise<void> {
  const [, kind, detail] = context.upstream.path.split('/');
  if (kind === 'own') {
    if (detail === '429') return sendErrorAnswer(context, 429, 'rate-limited', 'too many requests', { 'retry-after': '7' });
    return sendGatewayError(context, detail as 'no-instances');
  }
  const status = Number(detail);
  const sink = startResponseBody(context, status, { 'content-type': 'text/plain', etag: '"body"', 'content-length': UPSTREAM_CHUNK.length * UPSTREAM_CHUNKS, 'set-cookie': 'kept=1' });
  for (let index = 0; index < UPSTREAM_CHUNKS; index += 1) {
    if (!sink.write(UPSTREAM_CHUNK)) await once(sink, 'drain');
  }
  sink.end();
  await once(context.response, 'finish');
}

describe('errors', () => {
  let dir: string;
  let settings: ErrorsSettings;
  let server: MiddlewareServer | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-errors-'));
    for (const [key, page] of Object.entries(PAGES)) writeFileSync(join(dir, `${key}.html`), page);
    const text = `middlewares:\n  e: { errors: { pages: { "5xx": 5xx.html, "502": 502.html, "429": 429.html } } }\n`;
    const definition = parseConfig(join(dir, 'gateway.yaml'), text).middlewares.get('e');
    if (definition?.kind !== 'errors') throw new Error('no errors middleware');
    settings = definition.settings;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('reads its pages at load, the most specific first', () => {
    expect(settings.pages.map(({ key, from, to, body }) => [key, from, to, body?.bytes.toString('utf8')])).toEqual([
      ['429', 429, 429, PAGES['429']],
      ['502', 502, 502, PAGES['502']],
      ['5xx', 500, 599, PAGES['5xx']],
    ]);
    expect(settings.contentType).toBe('text/html; charset=utf-8');
  });

  it.each([
    [500, PAGES['5xx']],
    [502, PAGES['502']],
    [599, PAGES['5xx']],
  ])("gives an upstream's %i the most specific page, dropping its 4 MiB body and that body's headers, keeping the others", async (status, page) => {
    server = await serveMiddleware([errors(settings)], upstreamOrOwn);
    const response = await server.send(`/upstream/${status}`);
    expect([response.status, response.body.toString('utf8')]).toEqual([status, page]);
    expect(response.headers).toMatchObject({ 'content-type': 'text/html; charset=utf-8', 'content-length': String(page.length), 'set-cookie': ['kept=1'] });
    expect(response.headers.etag).toBeUndefined();
    expect(server.contexts[0]!.outcome.bytesOut).toBe(page.length);
  });

  it.each([200, 404, 304])('leaves an upstream %i as it is', async (status) => {
    server = await serveMiddleware([errors(settings)], upstreamOrOwn);
    const response = await server.send(`/upstream/${status}`);
    expect([response.status, response.headers.etag, response.body.length]).toEqual([status, '"body"', status === 304 ? 0 : UPSTREAM_CHUNK.length * UPSTREAM_CHUNKS]);
  });

  it("gives the gateway's own answers and an inner refusal the page, keeping their status and Retry-After", async () => {
    server = await serveMiddleware([errors(settings)], upstreamOrOwn);
    const noInstance = await server.send('/own/no-instances');
    expect([noInstance.status, noInstance.headers['retry-after'], noInstance.headers['content-type'], noInstance.body.toString('utf8')]).toEqual([503, '1', 'text/html; charset=utf-8', PAGES['5xx']]);
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 503, errorClass: 'no-instances', bytesOut: PAGES['5xx'].length });
    const limited = await server.send('/own/429');
    expect([limited.status, limited.headers['retry-after'], limited.body.toString('utf8')]).toEqual([429, '7', PAGES['429']]);
  });

  it("answers HEAD with the page's head and no body", async () => {
    server = await serveMiddleware([errors(settings)], upstreamOrOwn);
    for (const path of ['/upstream/502', '/own/no-instances']) {
      const response = await server.send(path, { method: 'HEAD' });
      expect([response.headers['content-type'], response.headers['content-length'], response.body.length]).toEqual(['text/html; charset=utf-8', String(path.includes('502') ? PAGES['502'].length : PAGES['5xx'].length), 0]);
    }
  });

  it('leaves gRPC calls, upgrades and the answers of the layers around it as they are', async () => {
    /** Answers 503 itself once the inner layers are done: a layer outside `errors`. */
    const outerAnswer: Middleware = async (context, next) => {
      await next();
      sendGatewayError(context, 'no-healthy-instances');
    };
    server = await serveMiddleware([outerAnswer, errors(settings)], async () => undefined);
    const outer = await server.send('/');
    expect([outer.status, outer.headers['content-type']]).toEqual([503, 'application/json']);
    await server.close();
    server = await serveMiddleware([errors(settings)], upstreamOrOwn);
    const grpc = await server.send('/own/no-instances', { headers: { 'content-type': 'application/grpc-web' } });
    expect(grpc.headers['content-type']).not.toBe('text/html; charset=utf-8');
    const upgrade = await server.send('/upstream/502', { headers: { connection: 'upgrade', upgrade: 'websocket' } });
    expect([upgrade.status, upgrade.headers.etag]).toEqual([502, '"body"']);
  });

  it("gives the gateway's 500 for a failure thrown inside it the page too", async () => {
    const config = parseConfig(join(dir, 'gateway.yaml'), 'accessLog: false\nmiddlewares:\n  e: { errors: { pages: { "5xx": 5xx.html } } }\nroutes: [{ path: /, service: svc, middlewares: [e] }]\n');
    const runner = createRequestRunner(config, { proxy: () => Promise.reject(new Error('a layer inside errors failed')), hasService: () => true });
    server = await serveMiddleware([], (context) => runner(context));
    const response = await server.send('/x');
    expect([response.status, response.headers['content-type'], response.body.toString('utf8')]).toEqual([500, 'text/html; charset=utf-8', PAGES['5xx']]);
  });

  it("gives a forward-auth service's relayed refusal the page, keeping its status and its other headers", async () => {
    const relayed = { headers: { 'content-type': 'text/plain', 'retry-after': '3' }, body: Buffer.from('slow down, from the auth service') };
    server = await serveMiddleware([errors(settings)], async (context) => denyAccess(context, { status: 429, reason: 'forward-auth-denied', message: '', relayed }));
    const response = await server.send('/x');
    expect([response.status, response.headers['content-type'], response.headers['retry-after'], response.body.toString('utf8')]).toEqual([429, 'text/html; charset=utf-8', '3', PAGES['429']]);
    expect(server.contexts[0]!.outcome.bytesOut).toBe(PAGES['429'].length);
  });

  it("inside another errors middleware, takes the outer one's page for a status it has none for", async () => {
    const inner: ErrorsSettings = { pages: [{ key: '404', from: 404, to: 404, file: '404.html', body: undefined }], contentType: 'text/plain' };
    server = await serveMiddleware([errors(settings), errors(inner)], upstreamOrOwn);
    const own = await server.send('/own/no-instances');
    expect([own.status, own.body.toString('utf8')]).toEqual([503, PAGES['5xx']]);
    const notFound = await server.send('/upstream/404');
    expect([notFound.status, notFound.headers['content-type'], notFound.body.length]).toEqual([404, 'text/plain', 0]);
  });
});
