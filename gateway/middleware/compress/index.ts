import type { OutgoingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import type { CompressSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { mayCompress, negotiateEncoding, varyOnAcceptEncoding } from './negotiate.ts';

export { compressibleType, mayCompress, negotiateEncoding } from './negotiate.ts';

/**
 * The streaming encoder for `coding`: every write is flushed (zlib's Z_SYNC_FLUSH, brotli's
 * BROTLI_OPERATION_FLUSH), so each upstream chunk reaches the client as it comes, as a server-sent
 * events stream needs; `level` is gzip's level and brotli's quality.
 */
function createEncoder(coding: 'br' | 'gzip', level: number, sizeHint: number): Transform {
  if (coding === 'gzip') return createGzip({ level, flush: constants.Z_SYNC_FLUSH });
  const params: Record<number, number> = { [constants.BROTLI_PARAM_QUALITY]: level };
  if (sizeHint > 0) params[constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
  return createBrotliCompress({ flush: constants.BROTLI_OPERATION_FLUSH, params });
}

/**
 * Compresses answers on the fly (Traefik's `compress`, nginx's `gzip`): picks `br` or `gzip` by the
 * request's Accept-Encoding and the server's order, streams the body through the encoder (never
 * buffered whole, back-pressure kept), and adds `Vary: Accept-Encoding` to every answer that may be
 * compressed. A compressed answer loses Content-Length and Accept-Ranges, gets Content-Encoding,
 * and a strong ETag is weakened (`W/`): the bytes differ. `mayCompress` lists what is left untouched.
 */
export function compress(settings: CompressSettings): Middleware {
  const encoder = (status: number, headers: OutgoingHttpHeaders, context: GatewayContext): Transform | undefined => {
    const { request } = context;
    if (!mayCompress(request.method ?? 'GET', request.headers, status, headers, settings)) return undefined;
    varyOnAcceptEncoding(headers);
    const coding = negotiateEncoding(request.headers['accept-encoding'], settings.encodings);
    if (coding === undefined) return undefined;
    const sizeHint = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
    delete headers['content-length'];
    delete headers['accept-ranges'];
    headers['content-encoding'] = coding;
    const etag = headers.etag;
    if (typeof etag === 'string' && !etag.startsWith('W/')) headers.etag = `W/${etag}`;
    return createEncoder(coding, settings.level, sizeHint);
  };
  return async function compress(context, next) {
    context.responseEncoder = encoder;
    await next();
  };
}
