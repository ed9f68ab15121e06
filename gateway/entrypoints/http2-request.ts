import { constants, Http2ServerRequest } from 'node:http2';
import { ClientGoneError } from '../transports/transport-outcome.ts';

/**
 * Set once the end of a request's body has been pushed: a later end (the stream's 'close' pushes
 * one too, after its 'end' did) changes nothing. Not a declared field: the request type the
 * compatibility response refers to is node's own.
 */
const ENDED = Symbol('ended');
type Ended = { [ENDED]?: true };

/**
 * The HTTP/2 request the gateway hands its middleware and proxy: the compatibility request, whose
 * body fails when its stream is reset before the client's END_STREAM (an RST_STREAM, its
 * connection gone, or requestTimeout's reset), as node:http fails an HTTP/1.1 body whose
 * connection closes mid-way. node:http2 ends it instead, on the stream's 'close', so the proxy
 * finished the upstream request, a chunked body with its last chunk, as if the upload were whole,
 * and the upstream acted on a truncated file or a cut JSON that still parses. Failed instead
 * (`ClientGoneError`), the body aborts the upstream request: the upstream sees its connection
 * reset, never the last chunk, and nothing counts against it. (A client that sends END_STREAM,
 * then resets, as node's own client does on `close()`, has sent its body whole: it ends.)
 */
export class GatewayHttp2Request extends Http2ServerRequest {
  // Readable's signature; node's compatibility layer pushes the end of the body as `null`: on the
  // stream's 'end' (END_STREAM received, the stream still open: `rstCode` 0) and on its 'close'.
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && (this as Ended)[ENDED] !== true) {
      (this as Ended)[ENDED] = true;
      if (!this.destroyed && this.stream.rstCode !== constants.NGHTTP2_NO_ERROR) {
        cutBody(this);
        return false;
      }
    }
    return super.push(chunk, encoding);
  }
}

/** Fails a request's body with `ClientGoneError`, the error the proxy aborts the upstream request on without blaming the upstream. */
function cutBody(request: Http2ServerRequest): void {
  // No reader may be left to hear it (a request answered without reading its body): not a crash.
  if (request.listenerCount('error') === 0) request.once('error', ignoreError);
  request.destroy(new ClientGoneError());
}

/** An 'error' listener for a request body nobody reads any more. */
function ignoreError(): void {}
