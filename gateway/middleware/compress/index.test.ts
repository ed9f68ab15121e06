import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { CompressSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { compress, mayCompress, negotiateEncoding } from './index.ts';

const BOTH = ['br', 'gzip'] as const;
const SETTINGS: CompressSettings = { encodings: BOTH, minBytes: 1024, contentTypes: ['text/*', 'application/json'], excludedContentTypes: undefined, level: 5 };

describe('negotiateEncoding', () => {
  it.each([
    [undefined, BOTH, undefined],
    ['', BOTH, undefined],
    ['gzip', BOTH, 'gzip'],
    ['gzip, br', BOTH, 'br'],
    ['gzip, br', ['gzip', 'br'], 'gzip'],
    ['br;q=0.5, gzip', BOTH, 'gzip'],
    ['br;q=0, gzip;q=0', BOTH, undefined],
    ['*', BOTH, 'br'],
    ['*;q=0.3, gzip;q=0.5', BOTH, 'gzip'],
    ['*;q=0', BOTH, undefined],
    ['gzip;q=0, *', BOTH, 'br'],
    ['br;q=0, *', ['br'], undefined],
    ['identity', BOTH, undefined],
    ['identity;q=1, gzip;q=0.5', BOTH, undefined],
    ['identity;q=0.5, gzip', BOTH, 'gzip'],
    ['identity;q=0, gzip', BOTH, 'gzip'],
    ['x-gzip', BOTH, 'gzip'],
    ['GZIP ; Q=0.8, deflate', BOTH, 'gzip'],
    ['deflate, zstd', BOTH, undefined],
    ['br;q=0.001', BOTH, 'br'],
  ] as const)('picks from Accept-Encoding %j offering %j: %j', (header, offered, expected) => {
    expect(negotiateEncoding(header, offered)).toBe(expected);
  });
});

describe('mayCompress', () => {
  const compressible: OutgoingHttpHeaders = { 'content-type': 'text/html; charset=utf-8', 'content-length': '4096' };
  it.each([
    ['a large text answer to GET', {}, 200, compressible, true],
    ['a chunked answer of unknown length', {}, 200, { 'content-type': 'text/event-stream' }, true],
    ['an error page', {}, 404, compressible, true],
    ['a JSON answer', {}, 201, { 'content-type': 'application/json' }, true],
    ['an answer with Content-Encoding: identity', {}, 200, { ...compressible, 'content-encoding': 'identity' }, true],
    ['a 204', {}, 204, { 'content-type': 'text/plain' }, false],
    ['a 205, which must have no body', {}, 205, { 'content-type': 'text/plain' }, false],
    ['a 304', {}, 304, compressible, false],
    ['a 206', {}, 206, compressible, false],
    ['an answer to a Range request', { range: 'bytes=0-10' }, 200, compressible, false],
    ['an upgrade', { upgrade: 'websocket' }, 101, compressible, false],
    ['a gRPC call', { 'content-type': 'application/grpc-web+proto' }, 200, { 'content-type': 'text/plain' }, false],
    ['an answer already gzipped', {}, 200, { ...compressible, 'content-encoding': 'gzip' }, false],
    ['an answer with Cache-Control no-transform', {}, 200, { ...compressible, 'cache-control': 'public, No-Transform' }, false],
    ['an answer below minSize', {}, 200, { ...compressible, 'content-length': '1023' }, false],
    ['an answer of exactly minSize', {}, 200, { ...compressible, 'content-length': '1024' }, true],
    ['an image', {}, 200, { 'content-type': 'image/png' }, false],
    ['an answer without Content-Type', {}, 200, {}, false],
  ] as const)('%s', (_name, request, status, headers, expected) => {
    expect(mayCompress(request as IncomingHttpHeaders, status, { ...headers }, SETTINGS)).toBe(expected);
  });

  it.each([
    ['application/problem+json', true],
    ['application/vnd.api+json; charset=utf-8', true],
    ['Application/Soap+XML', true],
    ['application/json', false],
    ['application/+json', false],
    ['application/json-seq', false],
    ['image/svg+xml', false],
  ])('matches a suffix pattern (application/*+json, application/*+xml) against %s: %s', (type, expected) => {
    const settings = { ...SETTINGS, contentTypes: ['application/*+json', 'application/*+xml'] };
    expect(mayCompress({}, 200, { 'content-type': type }, settings)).toBe(expected);
  });

  it('compresses every type but the excluded ones when excludedContentTypes is set', () => {
    const settings = { ...SETTINGS, excludedContentTypes: ['image/*', 'application/zip', 'application/*+zip'] };
    expect(mayCompress({}, 200, { 'content-type': 'application/octet-stream' }, settings)).toBe(true);
    expect(mayCompress({}, 200, { 'content-type': 'application/epub+zip' }, settings)).toBe(false);
    expect(mayCompress({}, 200, { 'content-type': 'image/webp' }, settings)).toBe(false);
    expect(mayCompress({}, 200, { 'content-type': 'Application/Zip' }, settings)).toBe(false);
  });
});

describe('compress', () => {
  it('edits the head of an answer it compresses: coding set, length, ranges and digests of the upstream bytes gone, ETag weakened', async () => {
    const context = { request: { method: 'GET', headers: { 'accept-encoding': 'gzip' } }, responseEncoder: undefined } as unknown as GatewayContext;
    await compress(SETTINGS)(context, async () => {});
    const headers: OutgoingHttpHeaders = {
      'content-type': 'text/plain',
      'content-length': '4096',
      'accept-ranges': 'bytes',
      etag: '"v1"',
      'content-digest': 'sha-256=:AAAA:',
      'repr-digest': 'sha-256=:BBBB:',
      'content-md5': 'Q2hlY2sgSW50ZWdyaXR5IQ==',
    };
    const encoder = context.responseEncoder!(200, headers, context);
    expect(encoder).toBeDefined();
    encoder!.destroy();
    expect(headers).toEqual({ 'content-type': 'text/plain', etag: 'W/"v1"', 'content-encoding': 'gzip', vary: 'Accept-Encoding' });
  });

  it.each([
    ['stands for a compressed 200: loses the length, ranges and digests of the upstream bytes, ETag weakened', { 'accept-encoding': 'gzip' }, { 'content-type': 'text/plain', 'content-length': '4096', 'accept-ranges': 'bytes', 'repr-digest': 'sha-256=:BBBB:', etag: '"v1"' }, { 'content-type': 'text/plain', etag: 'W/"v1"', vary: 'Accept-Encoding' }],
    ['stands for a 200 sent as it is to a client that accepts no coding: keeps its head, with Vary', { 'accept-encoding': 'identity' }, { 'content-length': '4096', 'accept-ranges': 'bytes', etag: '"v1"' }, { 'content-length': '4096', 'accept-ranges': 'bytes', etag: '"v1"', vary: 'Accept-Encoding' }],
    ['says a length below minBytes, a 200 never compressed: keeps its head', { 'accept-encoding': 'gzip' }, { 'content-type': 'text/plain', 'content-length': '1023', etag: '"v1"' }, { 'content-type': 'text/plain', 'content-length': '1023', etag: '"v1"' }],
    ['says Content-Length 0, its own empty body as some servers send it, not the 200\'s: stands for a compressed 200', { 'accept-encoding': 'gzip' }, { 'content-length': '0', etag: '"v1"' }, { etag: 'W/"v1"', vary: 'Accept-Encoding' }],
    ['names a type left out: keeps its head', { 'accept-encoding': 'gzip' }, { 'content-type': 'image/png', 'content-length': '4096', etag: '"v1"' }, { 'content-type': 'image/png', 'content-length': '4096', etag: '"v1"' }],
  ])('edits a 304 that %s', async (_name, requestHeaders, headers, expected) => {
    const context = { request: { method: 'GET', headers: requestHeaders }, responseEncoder: undefined } as unknown as GatewayContext;
    await compress(SETTINGS)(context, async () => {});
    const edited: OutgoingHttpHeaders = { ...headers };
    expect(context.responseEncoder!(304, edited, context)).toBeUndefined();
    expect(edited).toEqual(expected);
  });

  it('gives an answer to HEAD the head the GET gets, and no encoder: it has no body', async () => {
    const context = { request: { method: 'HEAD', headers: { 'accept-encoding': 'br' } }, upstream: { method: 'HEAD' }, responseEncoder: undefined } as unknown as GatewayContext;
    await compress(SETTINGS)(context, async () => {});
    const headers: OutgoingHttpHeaders = { 'content-type': 'text/plain', 'content-length': '4096', 'accept-ranges': 'bytes', etag: '"v1"' };
    expect(context.responseEncoder!(200, headers, context)).toBeUndefined();
    expect(headers).toEqual({ 'content-type': 'text/plain', etag: 'W/"v1"', 'content-encoding': 'br', vary: 'Accept-Encoding' });
  });

  it('leaves an answer to HEAD without a Content-Length as it is: the GET it stands for may be below minBytes, and not compressed', async () => {
    const context = { request: { method: 'HEAD', headers: { 'accept-encoding': 'br' } }, upstream: { method: 'HEAD' }, responseEncoder: undefined } as unknown as GatewayContext;
    await compress(SETTINGS)(context, async () => {});
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', etag: '"v1"' };
    expect(context.responseEncoder!(200, headers, context)).toBeUndefined();
    expect(headers).toEqual({ 'content-type': 'application/json', etag: '"v1"' });
  });

  it('gives an answer without a Content-Length to a HEAD the cache fetched as a GET (convertHead) the head that GET gets: it is the GET\'s own, chunked', async () => {
    const asGet = { request: { method: 'GET', headers: { 'accept-encoding': 'br' } }, upstream: { method: 'GET' }, responseEncoder: undefined } as unknown as GatewayContext;
    const converted = { request: { method: 'HEAD', headers: { 'accept-encoding': 'br' } }, upstream: { method: 'GET' }, responseEncoder: undefined } as unknown as GatewayContext;
    const heads: OutgoingHttpHeaders[] = [];
    for (const context of [asGet, converted]) {
      await compress(SETTINGS)(context, async () => {});
      const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', etag: '"v1"' };
      context.responseEncoder!(200, headers, context)?.destroy();
      heads.push(headers);
    }
    expect(heads[1]).toEqual({ 'content-type': 'application/json', etag: 'W/"v1"', 'content-encoding': 'br', vary: 'Accept-Encoding' });
    expect(heads[1]).toEqual(heads[0]);
  });
});
