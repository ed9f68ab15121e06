import type { OutgoingHttpHeaders } from 'node:http';
import { Transform, type Writable } from 'node:stream';
import type { ClientPart, ClientResponse, GatewayContext, ResponseBodyTap } from '../context.ts';
import { ErrorPageDrain, errorPageFor, sendErrorPage } from '../proxy/error-page.ts';

/** Destroys the encoder of a response that closed: a client gone mid-answer, or a cut one. */
function stopEncoder(encoder: Transform): void {
  if (!encoder.writableEnded || !encoder.readableEnded) encoder.destroy();
}

/**
 * Counts `length` bytes of an answer's body, just written to `sink`, as sent to the client
 * (`RequestOutcome.bytesOut`), unless `sink` is an encoder or a tap: what went to the client then
 * is counted as it leaves them (the encoded bytes, as nginx's `$body_bytes_sent`) by `startResponseBody`.
 */
export function countBodyBytes(context: GatewayContext, sink: Writable, length: number): void {
  if (sink === context.response) context.outcome.bytesOut += length;
}

/**
 * Writes an upstream answer's head to the client and returns where its body goes: the response
 * itself, or the encoder of a gRPC-Web call's translated answer (`GrpcWebTranslation.startBody`) or the one the route's `responseEncoder` chose (which may edit `outgoing` first), or,
 * for a status an `errors` page stands for, the sink that drops the body, the page (not compressed)
 * already sent whole in its place (`sendErrorPage`); an encoder is piped into the response, its output counted in `bytesOut` (`countBodyBytes`);
 * with a `responseTapper` that watches this answer (one whose body a page replaces too: the tap then reads it on alone), a pass-through
 * in front of them that shows the tap each chunk as it goes by (never holding it back), and hands on
 * only the tap's `part` when it names one, the answer then sent with the part's status. Either is a writable with back-pressure: `write` returns false and
 * 'drain' follows once the client (through the encoder) took what it had. A response destroyed
 * (the client gone, or the proxy cutting an answer whose upstream failed) destroys its encoder, so
 * a truncated answer never gets a clean end; an encoder that fails destroys the response.
 */
export function startResponseBody(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders): Writable {
  const response = context.response;
  const page = errorPageFor(context, status);
  if (page) {
    // The client gets the page, but a cache inside the `errors` layer still keeps the upstream's own
    // answer (a 404 stored for a minute), as nginx's cache keeps an error it intercepts: its hits then
    // get the page in turn. Asked before the page's headers replace the answer's.
    const pageTap = context.responseTapper?.(status, outgoing, context);
    const drain = sendErrorPage(context, status, outgoing, page);
    return pageTap === undefined ? drain : pipeTapped(pageTap, drain, context, pageTap.part ?? { status, start: 0, end: 0, length: Number.POSITIVE_INFINITY });
  }
  const tap = context.responseTapper?.(status, outgoing, context);
  let answered = status;
  if (tap?.part !== undefined) {
    // The client's answer is the part; the attempt stays judged by the upstream's own status.
    context.outcome.upstreamStatus = status;
    answered = context.outcome.status = tap.part.status;
    // A part whose status an `errors` page stands for (the 412 or the 416 a cache makes of a fetched
    // answer) gets the page, as the same answer from memory does; the body still goes by the tap.
    const partPage = answered === status ? undefined : errorPageFor(context, answered);
    if (partPage) return pipeTapped(tap, sendErrorPage(context, answered, outgoing, partPage), context);
  }
  // A gRPC-Web call `grpcWeb` sent as gRPC gets its answer's body translated; compress leaves gRPC alone.
  const encoder = context.grpcWeb?.startBody() ?? context.responseEncoder?.(answered, outgoing, context);
  try {
    response.writeHead(answered, outgoing);
  } catch (error) {
    // The head refused (`AnswerHeadError`): the tap, which nothing else would end, lets go of what
    // it holds (a cache's lock and updating mark), and the encoder of a body that never comes goes.
    tap?.abort();
    encoder?.destroy();
    throw error;
  }
  const sink = encoder === undefined ? (response as Writable) : pipeEncoded(encoder, response, context.outcome);
  return tap === undefined ? sink : pipeTapped(tap, sink, context);
}

/**
 * Writes an answer held whole in memory (a stored one, `cache`) as an upstream's goes, the response
 * header hooks already run over `outgoing`: through `startResponseBody` (the encoder, an error
 * page); a HEAD gets the head alone.
 */
export function sendHeldAnswer(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders, body: Buffer): void {
  const sink = startResponseBody(context, status, outgoing);
  if (context.request.method === 'HEAD' || body.length === 0) sink.end();
  else {
    countBodyBytes(context, sink, body.length);
    sink.end(body);
  }
}

/**
 * Sends an `AnswerReplacer`'s answer whole in an upstream answer's place (`sendHeldAnswer`), and
 * returns the sink of the upstream body it replaces, which drops every chunk as an error page's
 * does (`ErrorPageDrain`: the HTTP/1.1 transport then bounds that body by the idle-body timeout in
 * all, the HTTP/2 one drops it with `dropBody`).
 */
export function sendReplacement(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders, body: Buffer): Writable {
  sendHeldAnswer(context, status, outgoing, body);
  return new ErrorPageDrain();
}

function pipeEncoded(encoder: Transform, response: ClientResponse, outcome: GatewayContext['outcome']): Transform {
  encoder.once('error', (error) => response.destroy(error));
  // Beside pipe's own 'data' listener: the stream stays flowing as pipe's back-pressure lets it.
  encoder.on('data', (chunk: Buffer) => (outcome.bytesOut += chunk.length));
  // A response the client left as the head came (the attempt then stops the upstream) may have
  // emitted its 'close' already: nothing would destroy the encoder, nor end it.
  if (response.destroyed) {
    encoder.destroy();
    return encoder;
  }
  encoder.pipe(response as Writable);
  response.once('close', () => stopEncoder(encoder));
  return encoder;
}

/**
 * Puts a pass-through before `sink` whose chunks `tap` sees (`TapPassing`): the tap's `end` comes
 * once the whole body went through it, before a response still open is ended (so it is settled
 * before the client can see the end); its `abort` when the response closed before the client's
 * answer was done and nothing reads on for the tap (`readsOnWithoutClient`), or when the transport
 * gives the body up (`stopTap`). `part` is what of the body goes to `sink` (the tap's own by default;
 * none of it, from a start past an end never reached, under an error page that answered already).
 */
function pipeTapped(tap: ResponseBodyTap, sink: Writable, context: GatewayContext, part = tap.part): Writable {
  const response = context.response;
  if (response.destroyed) {
    tap.abort();
    return sink;
  }
  const tee = new TapPassing(tap, part, context.outcome, sink === response);
  tee.once('error', (error) => response.destroy(error));
  tee.pipe(sink);
  response.once('close', () => {
    if (!tee.clientDone && !tee.destroyed) tee.destroy();
  });
  return tee;
}

/**
 * A tap's pass-through: the tap sees every chunk, and the client gets them all, or only the bytes
 * of `part` (those before and after it read and dropped; a skipped chunk asks for the next at
 * once). The client's answer may be done before the body is: its part went through (the response
 * then ends at once, its connection free for its next request), or it left while the tap keeps the
 * body (`readsOnWithoutClient`). The body is then read on for the tap alone, as nginx reads a
 * cacheable answer on after its client left, until its end (which ends the tap) or until the tap
 * keeps nothing (`keeping`: an answer that will not be stored, or one past its bound): the rest is
 * then `unwanted`, for the transport to leave unread (`bodyUnwanted`): a `bytes=0-1` probe of a
 * 2 GB video not to be stored neither reads the video nor waits for it.
 */
class TapPassing extends Transform {
  private offset = 0;
  /** The client's answer is done (its part went through, or it left while the tap kept the body): later chunks go to the tap alone. */
  clientDone = false;
  /** The client left before its answer was done: what it did not take is not counted as sent. */
  private gone = false;
  /** The client's answer is done and nothing more of the body is kept: the transport leaves the rest unread (`whenBodyUnwanted`). */
  unwanted = false;
  /** The transport's `whenBodyUnwanted`: called once, as the rest becomes unwanted. */
  leave: (() => void) | undefined = undefined;
  /** The whole body went through and the tap has its end. */
  private flushed = false;

  constructor(
    private readonly tap: ResponseBodyTap,
    private readonly part: ClientPart | undefined,
    private readonly outcome: GatewayContext['outcome'],
    counted: boolean,
  ) {
    super();
    // As the bytes leave for the client (or its encoder, which counts its own output).
    if (counted) this.on('data', (chunk: Buffer) => {
      if (!this.gone) outcome.bytesOut += chunk.length;
    });
    // A 416 needs none of the body.
    if (part !== undefined) this.endPartIfThrough(part);
    tap.onUnkept?.(() => {
      if (this.clientDone && !this.unwanted) this.leaveIfUnkept();
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.unwanted) return done();
    this.tap.chunk(chunk);
    const part = this.part;
    if (this.clientDone) this.leaveIfUnkept();
    else if (part === undefined) this.push(chunk);
    else {
      const from = Math.max(part.start - this.offset, 0);
      const to = Math.min(part.end - this.offset, chunk.length);
      this.offset += chunk.length;
      if (to > from) this.push(chunk.subarray(from, to));
      this.endPartIfThrough(part);
    }
    done();
  }

  override _flush(done: (error?: Error | null) => void): void {
    this.flushed = true;
    this.tap.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (!this.flushed) this.tap.abort();
    done(error);
  }

  /**
   * The client left before its answer was done: true, the body then read on for the tap alone,
   * when the tap still keeps it; the request is recorded `cancelled` as when its attempt stops.
   */
  readOn(): boolean {
    if (this.clientDone) return !this.unwanted;
    if (this.destroyed || this.tap.keeping?.() === false) return false;
    this.clientDone = this.gone = true;
    this.outcome.errorClass ??= 'cancelled';
    this.unpipe();
    // What the client did not take is dropped, and a transport waiting for 'drain' hears it.
    this.resume();
    return true;
  }

  /** Ends the client's answer once its part went through and some of the body is still to come (a body read to its end ends with it). */
  private endPartIfThrough(part: ClientPart): void {
    if (this.offset < part.end || this.offset >= part.length) return;
    this.clientDone = true;
    this.push(null);
    this.leaveIfUnkept();
  }

  private leaveIfUnkept(): void {
    if (this.tap.keeping?.() !== false) return;
    this.unwanted = true;
    this.leave?.();
  }
}

/**
 * Whether the rest of the body written to `sink` (`startResponseBody`'s) is wanted by nobody: the
 * client's answer is done and nothing of the body is kept (`TapPassing`). The transport then stops
 * reading it and closes its stream or connection, reporting the attempt as answered: the upstream
 * answered well, and the gateway chose not to read on.
 */
export function bodyUnwanted(sink: Writable): boolean {
  return sink instanceof TapPassing && sink.unwanted;
}

/** Whether `sink` (`startResponseBody`'s) passes a tap's body (`TapPassing`): only then is `whenBodyUnwanted` worth its callback. */
export function tapsBody(sink: Writable): boolean {
  return sink instanceof TapPassing;
}

/**
 * When `sink` (`startResponseBody`'s) passes a tap's body: calls `leave` once, as soon as the rest of
 * the body becomes unwanted (`bodyUnwanted`; at once if it is already), maybe from within a later
 * write or a tick after one (a chunk written after the client's part ended waits a tick in the
 * pass-through), and returns true; false for any other sink, whose body no chunk ever asks about.
 */
export function whenBodyUnwanted(sink: Writable, leave: () => void): boolean {
  if (!(sink instanceof TapPassing)) return false;
  sink.leave = leave;
  if (sink.unwanted) leave();
  return true;
}

/**
 * The client of `sink` (`startResponseBody`'s) left before its answer was done: true when its
 * transport is to read the body on for a tap that keeps it (`TapPassing.readOn`), instead of
 * stopping the upstream; the attempt then ends with the body, judged by the upstream's answer alone.
 */
export function readsOnWithoutClient(sink: Writable | undefined): boolean {
  return sink instanceof TapPassing && sink.readOn();
}

/** The transport gives up a body it was reading (the upstream failed, a timeout): a tap still gathering it (reading on) aborts. */
export function stopTap(sink: Writable | undefined): void {
  if (sink instanceof TapPassing && !sink.destroyed) sink.destroy();
}
