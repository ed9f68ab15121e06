import { constants, Http2ServerRequest, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ReadableOptions } from 'node:stream';
import { peerEnded, watchPeerEnd } from '../transports/transport-http2-peer-end.ts';
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
 * reset, never the last chunk, and nothing counts against it. An RST_STREAM with NO_ERROR cuts it
 * too (RFC 9113 §8.1: before END_STREAM it means the message was truncated), though node gives its
 * stream the `rstCode` of a clean end (`watchPeerEnd`). (A client that sends END_STREAM, then
 * resets, as node's own client does on `close()`, has sent its body whole: it ends.)
 */
export class GatewayHttp2Request extends Http2ServerRequest {
  // node's compatibility layer makes it in the session's 'stream' event, as `watchPeerEnd` asks.
  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: ReadableOptions, rawHeaders: readonly string[]) {
    super(stream, headers, options, rawHeaders);
    watchPeerEnd(stream);
  }

  // Readable's signature; node's compatibility layer pushes the end of the body as `null`: on the
  // stream's 'end' (the client's END_STREAM, or the stream's close) and on its 'close'.
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && (this as Ended)[ENDED] !== true) {
      (this as Ended)[ENDED] = true;
      // A stream reset with an error code by then is cut too, END_STREAM or not: trailers over the limits.
      if (!this.destroyed && (!peerEnded(this.stream) || this.stream.rstCode !== constants.NGHTTP2_NO_ERROR)) {
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

/**
 * How long a reset waits between looks for the answer's END_STREAM once a few turns of the event
 * loop did not see it go out (a client that does not read its socket holds it back).
 */
const END_STREAM_POLL_MS = 10;
/** The turns of the event loop a reset first waits for the answer's END_STREAM, before `END_STREAM_POLL_MS`. */
const END_STREAM_IMMEDIATE_TURNS = 8;

/**
 * Asks the client of an HTTP/2 request whose body is still coming to stop sending it once the
 * gateway's own answer to it is complete: RST_STREAM with NO_ERROR (RFC 9113 §8.1), which a client
 * must not take as a reason to drop the answer. node:http2 does so by itself only for a body nobody
 * began to read; one the proxy had read part of (a body counted by bodyLimit, found too large)
 * kept its stream open, the client sending the rest to be read and dropped. The reset follows the
 * answer's END_STREAM: the stream's writable 'finish' comes before nghttp2 has sent it, and a reset
 * submitted then goes out first (the last DATA frame without END_STREAM: an answer cut short), so
 * it waits until the stream's local side is closed (`state.localClose`, set once END_STREAM is sent).
 */
export function stopBodyAfterAnswer(request: Http2ServerRequest): void {
  const stream = request.stream;
  if (peerEnded(stream) || stream.closed) return;
  if (stream.writableFinished) closeWithNoError(stream, 0);
  else stream.once('finish', () => closeWithNoError(stream, 0));
}

/** Resets a stream whose answer is complete with NO_ERROR once its END_STREAM is out, unless its body came whole meanwhile. */
function closeWithNoError(stream: ServerHttp2Stream, turns: number): void {
  if (stream.closed || stream.destroyed || peerEnded(stream)) return;
  if (stream.state.localClose === 1) return void stream.close(constants.NGHTTP2_NO_ERROR);
  if (turns < END_STREAM_IMMEDIATE_TURNS) setImmediate(closeWithNoError, stream, turns + 1);
  else setTimeout(closeWithNoError, END_STREAM_POLL_MS, stream, turns + 1).unref();
}
