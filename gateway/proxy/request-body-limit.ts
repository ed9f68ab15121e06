import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { GatewayContext } from '../context.ts';
import { BodyTooLargeError, ClientGoneError } from '../transports/transport-outcome.ts';

declare module '../context.ts' {
  interface ContextVariables {
    /**
     * Set by bodyLimit on a request whose body has no `content-length` (HTTP/1.1 chunked, HTTP/2
     * without one): the most bytes of it the proxy may send upstream (`limitedBody`).
     */
    requestBodyLimit: number;
    /** Set by a route's mirror: sees every chunk of the body the proxy sends upstream, and its end (`limitedBody`). */
    requestBodyTap: RequestBodyTap;
    /** Set by `grpcWeb` on a `-text` call: makes the decoder the request body goes through before it is counted and sent (`limitedBody`). */
    requestBodyDecoder: () => Transform;
  }
}

/** Told of a request body as the proxy reads it for the upstream; must be cheap and must not throw. */
export interface RequestBodyTap {
  /** A chunk on its way upstream, in order; the tap must not change it. */
  data(chunk: Buffer): void;
  /** The whole body has been read; never called for a body cut short. */
  end(): void;
}

/**
 * Counts a request body as it streams (nginx counts a chunked body against client_max_body_size
 * the same way) and fails with `BodyTooLargeError` at the chunk that takes it past `maxBytes`:
 * that chunk and all after it never reach the upstream, whose request is aborted on the failure.
 */
class BodyCounter extends Transform {
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly tap: RequestBodyTap | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) return callback(new BodyTooLargeError(this.maxBytes));
    this.tap?.data(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.tap?.end();
    callback();
  }
}

/**
 * The body the proxy sends upstream for `context`'s request: the request itself, or, when
 * `grpcWeb` set `requestBodyDecoder`, the request decoded, and, when bodyLimit set
 * `requestBodyLimit` or a mirror set `requestBodyTap`, that read through a counter that fails past
 * the limit and shows each chunk to the tap (the bytes sent upstream). Called once a
 * request, so every attempt (HTTP/1.1 or HTTP/2 upstream) reads the same stream. The client's own
 * failure (it left, its HTTP/2 stream was reset) fails the body as `ClientGoneError`; the
 * counter's failure leaves the request alone (destroying it would cut an HTTP/1.1 connection before
 * the 413 reached the client): what is left of it is read and dropped. So is the decoder's (a body
 * it cannot decode, `BodyMalformedError`), which fails the counter after it with its own error.
 */
export function limitedBody(context: GatewayContext): Readable {
  const request = context.request;
  const maxBytes = context.get('requestBodyLimit');
  const tap = context.get('requestBodyTap');
  const decoder = context.get('requestBodyDecoder')?.();
  if (maxBytes === undefined && tap === undefined && decoder === undefined) return request;
  const source: Readable = decoder === undefined ? request : request.pipe(decoder);
  const body = maxBytes === undefined && tap === undefined ? (source as Transform) : new BodyCounter(maxBytes ?? Infinity, tap);
  const cut = () => {
    if (!body.destroyed) body.destroy(new ClientGoneError());
  };
  request.once('error', cut);
  request.once('close', () => {
    if (!request.readableEnded) cut();
  });
  decoder?.once('error', (error: Error) => {
    if (body !== decoder && !body.destroyed) body.destroy(error);
    if (request.readableEnded) return;
    request.unpipe(decoder);
    request.resume();
  });
  if (body === source) return body;
  body.once('error', () => {
    if (source.readableEnded) return;
    source.unpipe(body);
    source.resume();
  });
  return source.pipe(body);
}
