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
  }
}

/**
 * Counts a request body as it streams (nginx counts a chunked body against client_max_body_size
 * the same way) and fails with `BodyTooLargeError` at the chunk that takes it past `maxBytes`:
 * that chunk and all after it never reach the upstream, whose request is aborted on the failure.
 */
class BodyCounter extends Transform {
  private bytes = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) return callback(new BodyTooLargeError(this.maxBytes));
    callback(null, chunk);
  }
}

/**
 * The body the proxy sends upstream for `context`'s request: the request itself, or, when bodyLimit
 * set `requestBodyLimit`, the request read through a counter that fails past it. Called once a
 * request, so every attempt (HTTP/1.1 or HTTP/2 upstream) reads the same stream. The client's own
 * failure (it left, its HTTP/2 stream was reset) fails the counted body as `ClientGoneError`; the
 * counter's failure leaves the request alone (destroying it would cut an HTTP/1.1 connection before
 * the 413 reached the client): what is left of it is read and dropped.
 */
export function limitedBody(context: GatewayContext): Readable {
  const request = context.request;
  const maxBytes = context.get('requestBodyLimit');
  if (maxBytes === undefined) return request;
  const counted = new BodyCounter(maxBytes);
  const cut = () => {
    if (!counted.destroyed) counted.destroy(new ClientGoneError());
  };
  request.once('error', cut);
  request.once('close', () => {
    if (!request.readableEnded) cut();
  });
  counted.once('error', () => {
    if (request.readableEnded) return;
    request.unpipe(counted);
    request.resume();
  });
  return request.pipe(counted);
}
