import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import type { RespondSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { headers } from '../headers/index.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { respond } from './index.ts';

const MAINTENANCE: RespondSettings = { status: 503, body: 'down for maintenance, café', bodyFile: undefined, fileBody: undefined, contentType: 'text/plain; charset=utf-8', headers: { 'retry-after': '120' } };

/** An inner layer that must never run: `respond` answers in the upstream's place. */
const neverProxied = async (context: GatewayContext): Promise<void> => {
  throw new Error(`proxied ${context.upstream.path}`);
};

describe('respond', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('answers with its status, body, type and headers, never calling the inner layers, and records the answer with no upstream', async () => {
    server = await serveMiddleware([respond(MAINTENANCE)], neverProxied);
    const response = await server.send('/anything');
    expect(response.status).toBe(503);
    expect(response.body.toString('utf8')).toBe('down for maintenance, café');
    expect(response.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(MAINTENANCE.body!)), 'retry-after': '120' });
    expect(server.contexts[0]!.outcome).toEqual({ status: 503, errorClass: undefined, upstream: undefined, attempts: 0, bytesOut: Buffer.byteLength(MAINTENANCE.body!) });
  });

  it('sends the bytes of its bodyFile as they are, an image or text that is not UTF-8 too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-respond-'));
    try {
      // A PNG's signature, then bytes that are no UTF-8 (a UTF-8 reading turns each into U+FFFD's three bytes).
      const icon = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0xe9]);
      writeFileSync(join(dir, 'favicon.ico'), icon);
      const definition = parseConfig(join(dir, 'gateway.yaml'), 'middlewares:\n  icon: { respond: { status: 200, bodyFile: favicon.ico, contentType: image/x-icon } }\n').middlewares.get('icon');
      if (definition?.kind !== 'respond') throw new Error('no respond middleware');
      server = await serveMiddleware([respond(definition.settings)], neverProxied);
      const response = await server.send('/favicon.ico');
      expect([response.status, response.headers['content-type'], response.headers['content-length']]).toEqual([200, 'image/x-icon', String(icon.length)]);
      expect(response.body).toEqual(icon);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers HEAD with GET's head (its Content-Length too) and no body", async () => {
    server = await serveMiddleware([respond(MAINTENANCE)], neverProxied);
    const response = await server.send('/', { method: 'HEAD' });
    expect([response.status, response.headers['content-length'], response.headers['content-type'], response.body.length]).toEqual([503, String(Buffer.byteLength(MAINTENANCE.body!)), 'text/plain; charset=utf-8', 0]);
    expect(server.contexts[0]!.outcome.bytesOut).toBe(0);
  });

  it.each([
    [200, 'content-length', '0'],
    [403, 'content-length', '0'],
    [204, 'content-length', undefined],
    [304, 'content-length', undefined],
  ] as const)('answers %i without a body or a type, %s %s', async (status, name, value) => {
    server = await serveMiddleware([respond({ status, body: undefined, bodyFile: undefined, fileBody: undefined, contentType: undefined, headers: {} })], neverProxied);
    const response = await server.send('/');
    expect([response.status, response.headers[name], response.headers['content-type'], response.body.length]).toEqual([status, value, undefined, 0]);
  });

  it('lets the response header hooks of the layers around it edit its answer', async () => {
    server = await serveMiddleware([headers({ response: { set: { 'x-frame-options': 'DENY' }, remove: ['retry-after'] } }), respond(MAINTENANCE)], neverProxied);
    const response = await server.send('/');
    expect([response.status, response.headers['x-frame-options'], response.headers['retry-after']]).toEqual([503, 'DENY', undefined]);
  });

  it('answers 500 internal, without the hooks, when a response header hook fails its answer', async () => {
    const failingHook: Middleware = async (context, next) => {
      context.responseHeaderHooks.push(() => {
        throw new Error('hook failed');
      });
      await next();
    };
    server = await serveMiddleware([failingHook, respond(MAINTENANCE)], neverProxied);
    const response = await server.send('/');
    expect(response.status).toBe(500);
    expect(JSON.parse(response.body.toString('utf8'))).toMatchObject({ error: 'internal' });
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 500, errorClass: 'internal' });
  });
});
