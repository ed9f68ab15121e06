import type { Http2Stream } from 'node:http2';

/**
 * Watches `stream` for its peer's END_STREAM and returns whether it has come; call it before the
 * stream can receive a frame (at once after `session.request()`).
 *
 * node:http2 ends a stream's readable side at the peer's END_STREAM (a DATA or HEADERS frame) and
 * also when the stream closes: an RST_STREAM with NO_ERROR, or a close with no error code, ends it
 * the same way, `rstCode` 0 either way, so at 'end' a cut answer looks whole. RFC 9113 §8.1 allows
 * NO_ERROR only after a complete response (a server that answered without reading the request
 * body); before END_STREAM it means the response was truncated. The two differ in order only:
 * node pushes the end of a peer's END_STREAM while the stream is still open, and the end of a
 * close after marking the stream closed, so the stream's own `push` is watched.
 */
export function watchPeerEnd(stream: Http2Stream): () => boolean {
  let peerEnded = false;
  const push = stream.push;
  stream.push = function pushWatched(this: Http2Stream, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && !stream.closed) peerEnded = true;
    return push.call(this, chunk, encoding);
  };
  return () => peerEnded;
}
