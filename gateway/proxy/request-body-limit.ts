import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { GatewayContext } from '../context.ts';
import { BodyTooLargeError, ClientGoneError } from '../transports/transport-outcome.ts';

declare module '../context.ts' {
  interface ContextVariables {
    /**
     * Set by bodyLimit on a request whose body has no `content-length` (HTTP/1.1 chunked, HTTP/2
     * without one): the most bytes of it the client may send, counted as it sent them, before any
     * decoding (`limitedBody`).
     */
    requestBodyLimit: number;
    /** Set by a route's mirror: sees every chunk of the body the proxy sends upstream, and its end (`limitedBody`). */
    requestBodyTap: RequestBodyTap;
    /** Set by `grpcWeb` on a `-text` call: makes the decoder the request body goes through once bodyLimit counted it, before a mirror's tap sees it and it is sent (`limitedBody`). */
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
 * One step of a request body on its way upstream: counts it as it streams (nginx counts a chunked
 * body against client_max_body_size the same way) when given `maxBytes`, failing with
 * `BodyTooLargeError` at the chunk that takes it past them, so that chunk and all after it never
 * reach the upstream, whose request is aborted on the failure; and shows each chunk it passes, and
 * the end, to `tap` when given one (`RequestBodyTap`). One Transform does both when nothing
 * decodes the body between them.
 */
class BodyStep extends Transform {
  private bytes = 0;

  constructor(
    private readonly maxBytes: number | undefined,
    private readonly tap: RequestBodyTap | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.maxBytes !== undefined) {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) return callback(new BodyTooLargeError(this.maxBytes));
    }
    this.tap?.data(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.tap?.end();
    callback();
  }
}

/**
 * The body the proxy sends upstream for `context`'s request: the request itself, or that read
 * through, in this order, a counter that fails past the limit bodyLimit set (`requestBodyLimit`),
 * which so counts the body the client sent (a `-text` call's base64, as its `Content-Length`
 * does), the decoder `grpcWeb` set (`requestBodyDecoder`), and the tap a mirror set
 * (`requestBodyTap`), which sees the bytes sent upstream (decoded). Called once a request, so
 * every attempt (HTTP/1.1 or HTTP/2 upstream) reads the same stream. The client's own failure (it
 * left, its HTTP/2 stream was reset) fails the body as `ClientGoneError`; a step's failure (the
 * counter's `BodyTooLargeError`, the decoder's `BodyMalformedError` for a body it cannot decode)
 * fails the body with its own error and leaves the request alone (destroying it would cut an
 * HTTP/1.1 connection before the 413 reached the client): what is left of it is read and dropped.
 */
export function limitedBody(context: GatewayContext): Readable {
  const request = context.request;
  const maxBytes = context.get('requestBodyLimit');
  const decoder = context.get('requestBodyDecoder')?.();
  const tap = context.get('requestBodyTap');
  const steps: Transform[] = [];
  if (decoder === undefined) {
    if (maxBytes !== undefined || tap !== undefined) steps.push(new BodyStep(maxBytes, tap));
  } else {
    if (maxBytes !== undefined) steps.push(new BodyStep(maxBytes, undefined));
    steps.push(decoder);
    if (tap !== undefined) steps.push(new BodyStep(undefined, tap));
  }
  const body = steps.at(-1);
  if (body === undefined) return request;
  const cut = () => {
    if (!body.destroyed) body.destroy(new ClientGoneError());
  };
  request.once('error', cut);
  request.once('close', () => {
    if (!request.readableEnded) cut();
  });
  let source: Readable = request;
  for (const step of steps) {
    const from = source;
    step.once('error', (error: Error) => {
      if (step !== body && !body.destroyed) body.destroy(error);
      if (from.readableEnded) return;
      from.unpipe(step);
      from.resume();
    });
    source = from.pipe(step);
  }
  return body;
}
