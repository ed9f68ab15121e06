import type { OutgoingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import type { CompressSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { mayCompress, negotiateEncoding, notModifiedMayStandForCompressed, varyOnAcceptEncoding, weakenEtag } from './negotiate.ts';

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
 * Edits the head of an answer that stands for a compressed body: the upstream's length, ranges and
 * digests of its bytes (RFC 9530, RFC 1864) would not match the encoded ones, and a strong ETag is
 * weakened.
 */
function describeEncoded(headers: OutgoingHttpHeaders): void {
  delete headers['content-length'];
  delete headers['accept-ranges'];
  delete headers['content-digest'];
  delete headers['repr-digest'];
  delete headers['content-md5'];
  weakenEtag(headers);
}

/**
 * Compresses answers on the fly (Traefik's `compress`, nginx's `gzip`): picks `br` or `gzip` by the
 * request's Accept-Encoding and the server's order, streams the body through the encoder (never
 * buffered whole, back-pressure kept), and adds `Vary: Accept-Encoding` to every answer that may be
 * compressed. A compressed answer loses Content-Length, Accept-Ranges and the upstream's digests
 * (Content-Digest, Repr-Digest, Content-MD5), gets Content-Encoding,
 * and a strong ETag is weakened (`W/`): the bytes differ. An answer to HEAD gets the same head, with
 * no body. `mayCompress` lists what is left untouched.
 */
export function compress(settings: CompressSettings): Middleware {
  const encoder = (status: number, headers: OutgoingHttpHeaders, context: GatewayContext): Transform | undefined => {
    const { request } = context;
    if (status === 304) return notModified(request.headers, headers);
    if (!mayCompress(request.headers, status, headers, settings)) return undefined;
    // A HEAD's answer without a Content-Length (node leaves it out of every HEAD answer whose length
    // it would count) does not say whether the GET's is below `minBytes`, and left as it is. Not one
    // the cache fetched as a GET (`convertHead`): that is the GET's own answer, chunked, which a GET
    // gets compressed, and the HEAD gets that GET's head.
    if (request.method === 'HEAD' && context.upstream.method === 'HEAD' && headers['content-length'] === undefined && settings.minBytes > 0) return undefined;
    varyOnAcceptEncoding(headers);
    const coding = negotiateEncoding(request.headers['accept-encoding'], settings.encodings);
    if (coding === undefined) return undefined;
    const sizeHint = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
    describeEncoded(headers);
    headers['content-encoding'] = coding;
    // A HEAD's answer gets the head the GET's would have (RFC 9110 §9.3.2), and has no body to encode.
    if (request.method === 'HEAD') return undefined;
    return createEncoder(coding, settings.level, sizeHint);
  };
  /**
   * A 304 gets the Vary and the ETag of the 200 it revalidates (RFC 9110 §15.4.5): a cache
   * freshens its stored compressed answer only by a validator that matches its weak ETag (RFC 9111
   * §4.3.4), and a weakened ETag still matches, weakly, an answer that was not compressed. Standing
   * for a compressed 200, it loses the upstream's Content-Length (RFC 9110 §8.6: only the length
   * the 200 would have had, which is not known), Accept-Ranges and digests, as that 200 did: a
   * cache would take them into its stored compressed answer (RFC 9111 §3.2).
   */
  const notModified = (requestHeaders: GatewayContext['request']['headers'], headers: OutgoingHttpHeaders): undefined => {
    if (!notModifiedMayStandForCompressed(requestHeaders, headers, settings)) return undefined;
    varyOnAcceptEncoding(headers);
    if (negotiateEncoding(requestHeaders['accept-encoding'], settings.encodings) !== undefined) describeEncoded(headers);
    return undefined;
  };
  return async function compress(context, next) {
    context.responseEncoder = encoder;
    await next();
  };
}
