import type { OutgoingHttpHeaders } from 'node:http';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeProxy, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { responseTransform, transformBody } from './index.ts';

const upper = (body: Buffer) => Buffer.from(body.toString('utf8').toUpperCase());

describe('responseTransform', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('transforms a gzip body decoded and sends it gzip-encoded with a correct Content-Length', async () => {
    const original = gzipSync('hello from the upstream');
    server = await serveMiddleware(
      [responseTransform(upper)],
      fakeProxy({ headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': String(original.length), etag: '"v1"' }, body: original }),
    );
    const response = await server.send('/');
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(Number(response.headers['content-length'])).toBe(response.body.length);
    expect(gunzipSync(response.body).toString()).toBe('HELLO FROM THE UPSTREAM');
    expect(response.headers.etag).toBe('W/"v1"');
  });

  it('runs transforms in registration order', async () => {
    const append = (text: string) => (body: Buffer) => Buffer.concat([body, Buffer.from(text)]);
    server = await serveMiddleware([responseTransform(append('-outer')), responseTransform(append('-inner'))], fakeProxy({ body: Buffer.from('body') }));
    expect((await server.send('/')).body.toString()).toBe('body-outer-inner');
  });
});

describe('transformBody', () => {
  it('fixes Content-Length and drops Transfer-Encoding of a plain body', async () => {
    const headers: OutgoingHttpHeaders = { 'content-length': '5', 'transfer-encoding': 'chunked' };
    const body = await transformBody(Buffer.from('short'), headers, [() => Buffer.from('much longer')]);
    expect(body.toString()).toBe('much longer');
    expect(headers['content-length']).toBe('11');
    expect(headers['transfer-encoding']).toBeUndefined();
  });

  it('round-trips a brotli body', async () => {
    const headers: OutgoingHttpHeaders = { 'content-encoding': 'br' };
    const body = await transformBody(brotliCompressSync('abc'), headers, [upper]);
    expect(brotliDecompressSync(body).toString()).toBe('ABC');
  });

  it('passes the decoded body and the headers to async transforms', async () => {
    const seen: string[] = [];
    await transformBody(gzipSync('x'), { 'content-encoding': 'gzip' }, [
      async (body, headers) => {
        seen.push(`${body.toString()} ${String(headers['content-encoding'])}`);
        return body;
      },
    ]);
    expect(seen).toEqual(['x gzip']);
  });

  it.each([
    ['an encoding it cannot decode', { 'content-encoding': 'zstd', 'content-length': '3' }, Buffer.from([1, 2, 3])],
    ['several encodings', { 'content-encoding': 'gzip, br', 'content-length': '3' }, Buffer.from([1, 2, 3])],
    ['an empty body (HEAD, 204, 304)', { 'content-length': '1234' }, Buffer.alloc(0)],
  ])('returns a body with %s untouched', async (_case, headers: OutgoingHttpHeaders, input) => {
    const before = { ...headers };
    let called = false;
    const body = await transformBody(input, headers, [(value) => ((called = true), value)]);
    expect(body).toBe(input);
    expect(headers).toEqual(before);
    expect(called).toBe(false);
  });

  it('rejects a body that is not valid for its encoding', async () => {
    await expect(transformBody(Buffer.from('not gzip'), { 'content-encoding': 'gzip' }, [upper])).rejects.toThrow();
  });

  it('returns the body as it is when no transform is registered', async () => {
    const input = Buffer.from('same');
    expect(await transformBody(input, {}, [])).toBe(input);
  });
});
