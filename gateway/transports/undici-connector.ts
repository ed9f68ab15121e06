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
 */
export function resumingConnector(options: buildConnector.BuildOptions): buildConnector.connector {
  const connect = buildConnector(options);
  return (connectOptions, callback) => {
    connect(connectOptions, (...args) => {
      // undici's connector calls back with the error alone when the connection fails.
      const socket = args[1];
      if (socket) socket.prependListener('end', onEnd).prependListener('error', onError).prependListener('close', onClose);
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
