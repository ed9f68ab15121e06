import type { OutgoingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompress, deflate, gunzip, gzip, inflate } from 'node:zlib';
import type { Middleware, ResponseBodyTransform } from '../../context.ts';

type Codec = { decode: (body: Buffer) => Promise<Buffer>; encode: (body: Buffer) => Promise<Buffer> };

const CODECS: Readonly<Record<string, Codec>> = {
  gzip: { decode: promisify(gunzip), encode: promisify(gzip) },
  'x-gzip': { decode: promisify(gunzip), encode: promisify(gzip) },
  deflate: { decode: promisify(inflate), encode: promisify(deflate) },
  br: { decode: promisify(brotliDecompress), encode: promisify(brotliCompress) },
};

/**
 * Registers `transform` for the whole upstream response body. The proxy then buffers the body
 * and calls `transformBody`, so a transform always sees the decoded body: a `gzip`, `deflate` or
 * `br` body is decoded before the transforms and encoded again after them, and Content-Length is
 * fixed. Transforms run in registration order (outer middleware first).
 */
export function responseTransform(transform: ResponseBodyTransform): Middleware {
  return async function responseTransform(context, next) {
    context.responseBodyTransforms.push(transform);
    await next();
  };
}

/**
 * Runs `transforms` over a whole response body, for the proxy: decodes the Content-Encoding
 * (gzip, deflate, br), transforms, encodes again, then sets Content-Length, drops
 * Transfer-Encoding and weakens a strong ETag (the bytes changed), editing `headers` in place.
 * An empty body (HEAD, 204, 304) and a body in an encoding it cannot decode (several codings,
 * zstd…) are returned untouched with their headers, transforms skipped. Rejects when the body is
 * not valid for its encoding.
 */
export async function transformBody(body: Buffer, headers: OutgoingHttpHeaders, transforms: readonly ResponseBodyTransform[]): Promise<Buffer> {
  if (transforms.length === 0 || body.length === 0) return body;
  const coding = String(headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const codec = CODECS[coding];
  if (!codec && coding !== 'identity') return body;
  let result = codec ? await codec.decode(body) : body;
  for (const transform of transforms) result = await transform(result, headers);
  if (codec) result = await codec.encode(result);
  headers['content-length'] = String(result.length);
  delete headers['transfer-encoding'];
  const etag = headers.etag;
  if (typeof etag === 'string' && !etag.startsWith('W/')) headers.etag = `W/${etag}`;
  return result;
}
