import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/**
 * undici's connector, with one repair on every socket it opens.
 *
 * undici 7 (7.30.2 and earlier, nodejs/undici#5360) throws an uncatchable AssertionError from a
 * socket's 'end' listener when the server closes a connection that its response does not keep
 * alive (`Connection: close`, HTTP/1.0, a body that ends with the connection) while the HTTP/1.1
 * parser is paused by back-pressure. The gateway pauses it whenever its client reads slower than
 * the upstream answers, or while a pipelined request waits its turn: one such client and one such
 * upstream crashed the whole gateway. undici 8 fixes it (nodejs/undici#5474), but it needs Node 22.
 *
 * Here listeners ahead of undici's let a parser paused in a response go on (see `finishPaused`),
 * wherever undici would call `finish()`: at the end of the stream ('end'), on a reset ('error'
 * ECONNRESET) and on a close without an error ('close'). At the end of the stream every byte had
 * been parsed before the pause, so the answer completes; a body cut short still fails. The client
 * still gets every byte: the gateway already holds them in the client's write buffer, at most one
 * read beyond its high-water mark.
 *
 * And one more: the first error of a socket is kept as the `cause` of undici's "other side closed"
 * that follows it. A TLS 1.3 upstream judges the gateway's client certificate (none, expired, an
 * unknown CA) after the gateway's side of the handshake is done, so its alert comes as an error on
 * a socket undici has sent the request on; node:tls leaves that socket open, its 'end' comes next,
 * and undici fails the request with the error it makes there, which replaced the alert: a TLS
 * failure of the upstream was classed as a reset (`upstreamErrorCode` reads the cause).
 *
 * And a write that fails with a reset does not fail the request before its answer is read (see
 * `holdWriteFailures`): an upstream that answers an upload early (a 413 with `Connection: close`)
 * and closes without reading the rest is reset by its kernel, and the answer came first.
 */
export function resumingConnector(options: buildConnector.BuildOptions): buildConnector.connector {
  const connect = buildConnector(options);
  return (connectOptions, callback) => {
    connect(connectOptions, (...args) => {
      // undici's connector calls back with the error alone when the connection fails.
      const socket = args[1];
      if (socket) {
        holdWriteFailures(socket);
        socket.prependListener('end', onEnd).prependListener('error', onError).prependListener('close', onClose);
      }
      callback(...args);
    });
  };
}

/** What the listeners read of undici's HTTP/1.1 parser (`socket[kParser]`, not a public API). */
interface PausableParser {
  paused: boolean;
  readonly statusCode: number;
  readonly shouldKeepAlive: boolean;
  /** The llhttp instance (WebAssembly exports) and this parser's pointer in it. */
  readonly llhttp: { llhttp_resume(ptr: number): void };
  readonly ptr: number | null;
  execute(chunk: Buffer): void;
}

const EMPTY = Buffer.alloc(0);

/** undici's `kParser` symbol, found on the first socket that has one. */
let parserKey: symbol | undefined;

/** @internal Whether `socket` carries an undici HTTP/1.1 parser this module can see (for a test that guards an undici upgrade). */
export function hasUndiciParser(socket: Socket): boolean {
  return parserOf(socket) !== undefined;
}

function parserOf(socket: Socket): PausableParser | undefined {
  parserKey ??= Object.getOwnPropertySymbols(socket).find((key) => key.description === 'parser');
  const parser = parserKey === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[parserKey];
  return typeof parser === 'object' && parser !== null && typeof (parser as PausableParser).execute === 'function' ? (parser as PausableParser) : undefined;
}

/** Write errors that say the connection is gone (reset by the peer, or closed under the write). */
const RESET_CODES: ReadonlySet<unknown> = new Set(['ECONNRESET', 'EPIPE']);

/** Each socket's write failure held back, with the stream's callback of that write (see `holdWriteFailures`). */
const heldWrites = new WeakMap<Socket, () => void>();

/**
 * A write that fails with a reset is held back from the socket until the socket closes, its read
 * side going on meanwhile. An upstream may answer an upload before reading all of it (a 413, an
 * early 401) and close: node's http server does, and the peer's kernel then resets the connection
 * for the unread body. Node destroys a socket at its first failed write (the stream's write
 * callback), before reading what had come ahead of the reset (in the kernel's buffer, or read but
 * not yet handed to undici): undici failed the request with ECONNRESET or EPIPE, a
 * `reset-before-headers` blamed on the instance, though the answer had been sent. Held, no more
 * of the body is written (the stream waits on the write), undici's parser reads the answer to its
 * end (undici completes a response that ends before its request, and closes the connection) or
 * the read side ends without one: a reset or an end there fails the request as before, its
 * "other side closed" with this write's error as `cause`, so a crash during the upload still
 * counts against the instance. The read side ends at once: a write fails so only once the
 * connection is reset or closed.
 */
function holdWriteFailures(socket: Socket): void {
  let callback: ((error?: Error | null) => void) | undefined;
  // One callback per socket: a stream has one write at a time in flight.
  const written = (error?: Error | null): void => {
    const done = callback!;
    callback = undefined;
    // Only under undici's parser, whose 'end' and 'error' destroy the socket: node does not close a
    // socket whose write never completes, and an upgraded one (a WebSocket tunnel, its parser gone)
    // would stay open after the reset until the tunnel's idle timeout.
    if (error && RESET_CODES.has((error as NodeJS.ErrnoException).code) && !socket.destroyed && parserOf(socket) !== undefined) {
      if (!firstErrors.has(socket)) firstErrors.set(socket, error);
      heldWrites.set(socket, () => done(error));
      markNotReusable(socket);
      return;
    }
    done(error);
  };
  const write = socket._write;
  socket._write = function (chunk, encoding, done) {
    callback = done;
    write.call(this, chunk, encoding, written);
  };
  const writev = socket._writev;
  if (writev !== undefined) {
    socket._writev = function (chunks, done) {
      callback = done;
      writev.call(this, chunks, written);
    };
  }
}

/** undici's `kReset` symbol, found on the first socket that has one. */
let resetKey: symbol | undefined;

/**
 * Tells undici never to send another request on `socket` (its `kReset`, as for a request that asked
 * `Connection: close`): it closes the socket once the current answer is read, and a request waiting
 * for a connection is never pipelined behind the held write, where it would wait unsent until the
 * read side ends and then fail as a reset of the instance. Defensive: undici already closes a socket
 * whose answer completes while the request's body is still being written, and takes no other request
 * then; only a body that ended in the socket's buffer behind the held write (a small rest of the
 * upload) and a kept-alive early answer leave a gap until the reset is read, which no test here
 * hits reliably.
 */
function markNotReusable(socket: Socket): void {
  resetKey ??= Object.getOwnPropertySymbols(socket).find((key) => key.description === 'reset');
  if (resetKey !== undefined) (socket as unknown as Record<symbol, unknown>)[resetKey] = true;
}

function onEnd(this: Socket): void {
  // Also for a keep-alive answer: undici would fail it as cut short ("other side closed") though
  // every byte of it had come, and the gateway would count that against the upstream.
  finishPaused(parserOf(this));
}

/** Each socket's first error, for the errors after it (see `resumingConnector`). */
const firstErrors = new WeakMap<Socket, Error>();

function onError(this: Socket, error: NodeJS.ErrnoException): void {
  const first = firstErrors.get(this);
  if (first === undefined) firstErrors.set(this, error);
  else if (error.code === 'UND_ERR_SOCKET' && error.cause === undefined) error.cause = first;
  const parser = parserOf(this);
  if (error.code === 'ECONNRESET' && parser !== undefined && !parser.shouldKeepAlive) finishPaused(parser);
}

function onClose(this: Socket): void {
  // The stream's write callback, after the close: it destroys nothing more.
  const held = heldWrites.get(this);
  if (held !== undefined) {
    heldWrites.delete(this);
    held();
  }
  // As undici: a socket closed by an error (the gateway's own abort included) has failed its request already.
  if (this.errored) return;
  const parser = parserOf(this);
  if (parser !== undefined && !parser.shouldKeepAlive) finishPaused(parser);
}

/**
 * Lets a parser paused in a response go on over the bytes it was given: a length or chunked body
 * whose last bytes were among them completes; a body that ends with the connection is completed by
 * undici's `finish()` next, which must not find the parser paused again (undici pauses it once
 * more as it completes an answer not kept alive). Anything else fails as before. At 'end' every
 * byte read had been given to the parser; after a reset or a close, bytes still in the socket's
 * buffer are lost, so such an answer fails as cut short, as it does in undici's own fix.
 */
function finishPaused(parser: PausableParser | undefined): void {
  if (parser === undefined || !parser.paused || !(parser.statusCode > 0) || parser.ptr === null) return;
  unpause(parser, parser.ptr);
  parser.execute(EMPTY);
  if (parser.paused && !parser.shouldKeepAlive && parser.ptr !== null) unpause(parser, parser.ptr);
}

function unpause(parser: PausableParser, ptr: number): void {
  parser.llhttp.llhttp_resume(ptr);
  parser.paused = false;
}
