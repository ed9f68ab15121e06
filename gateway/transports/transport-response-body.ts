import type { OutgoingHttpHeaders } from 'node:http';
import { PassThrough, Transform, type Writable } from 'node:stream';
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
 * itself, or the encoder the route's `responseEncoder` chose (which may edit `outgoing` first), or,
 * for a status an `errors` page stands for, the sink that drops the body, the page (not compressed)
 * already sent whole in its place (`sendErrorPage`); an encoder is piped into the response, its output counted in `bytesOut` (`countBodyBytes`);
 * with a `responseTapper` that watches this answer (never one whose body a page replaces), a pass-through
 * in front of them that shows the tap each chunk as it goes by (never holding it back), and hands on
 * only the tap's `part` when it names one, the answer then sent with the part's status. Either is a writable with back-pressure: `write` returns false and
 * 'drain' follows once the client (through the encoder) took what it had. A response destroyed
 * (the client gone, or the proxy cutting an answer whose upstream failed) destroys its encoder, so
 * a truncated answer never gets a clean end; an encoder that fails destroys the response.
 */
export function startResponseBody(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders): Writable {
  const response = context.response;
  const page = errorPageFor(context, status);
  if (page) return sendErrorPage(context, status, outgoing, page);
  const tap = context.responseTapper?.(status, outgoing, context);
  let answered = status;
  if (tap?.part !== undefined) {
    // The client's answer is the part; the attempt stays judged by the upstream's own status.
    context.outcome.upstreamStatus = status;
    answered = context.outcome.status = tap.part.status;
  }
  const encoder = context.responseEncoder?.(answered, outgoing, context);
  response.writeHead(answered, outgoing);
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
 * does (`ErrorPageDrain`: the transports then bound that body by the idle-body timeout in all).
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
 * Puts a pass-through before `sink` whose chunks `tap` sees: the tap's `end` comes once the whole
 * body went through it, before the response is ended (so it is settled before the client can see
 * the end), its `abort` when the response closed before that (the client left, or the proxy cut the
 * answer), which also destroys the pass-through.
 */
function pipeTapped(tap: ResponseBodyTap, sink: Writable, context: GatewayContext): Writable {
  const response = context.response;
  if (response.destroyed) {
    tap.abort();
    return sink;
  }
  const counted = sink === response;
  let tee: Transform;
  if (tap.part === undefined) {
    tee = new PassThrough();
    tee.on('data', (chunk: Buffer) => {
      tap.chunk(chunk);
      if (counted) context.outcome.bytesOut += chunk.length;
    });
  } else {
    tee = new PartPassing(tap, tap.part);
    if (counted) tee.on('data', (chunk: Buffer) => (context.outcome.bytesOut += chunk.length));
  }
  tee.once('error', (error) => response.destroy(error));
  let ended = false;
  // Before pipe's own 'end' listener, which ends the sink.
  tee.once('end', () => {
    ended = true;
    tap.end();
  });
  tee.pipe(sink);
  response.once('close', () => {
    if (ended) return;
    tap.abort();
    if (!tee.destroyed) tee.destroy();
  });
  return tee;
}

/**
 * A tap's pass-through that hands on only the bytes of `part`: the tap sees every chunk, those
 * before and after the part are read and dropped (a skipped chunk asks for the next at once), so the
 * body goes on to its end, which ends the response. Unless the tap keeps nothing (`keeping`: an
 * answer that will not be stored, or one past its bound): then the response ends as soon as the
 * part went through, and the rest of the body is `unwanted` (`bodyUnwanted`), for the transport to
 * leave unread: a `bytes=0-1` probe of a 2 GB video neither reads the video nor waits for it.
 */
class PartPassing extends Transform {
  private offset = 0;
  /** The part went through (the response ended, or ends once it is written) and nothing more of the body is kept: later chunks are dropped. */
  unwanted = false;

  constructor(
    private readonly tap: ResponseBodyTap,
    private readonly part: ClientPart,
  ) {
    super();
    // A 416 needs none of the body.
    this.leaveRest();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.unwanted) return done();
    this.tap.chunk(chunk);
    const part = this.part;
    const from = Math.max(part.start - this.offset, 0);
    const to = Math.min(part.end - this.offset, chunk.length);
    this.offset += chunk.length;
    if (to > from) this.push(chunk.subarray(from, to));
    this.leaveRest();
    done();
  }

  /** Ends the client's answer once its part went through, when nothing more of the body is kept and some is still to come (a body read to its end leaves its connection reusable). */
  private leaveRest(): void {
    if (this.offset < this.part.end || this.offset >= this.part.length || this.tap.keeping?.() !== false) return;
    this.unwanted = true;
    this.push(null);
  }
}

/**
 * Whether the rest of the body written to `sink` (`startResponseBody`'s) is wanted by nobody: the
 * client's part went through and nothing of the body is kept (`PartPassing`). The transport then stops
 * reading it and closes its stream or connection, reporting the attempt as answered: the upstream
 * answered well, and the gateway chose not to read on.
 */
export function bodyUnwanted(sink: Writable): boolean {
  return sink instanceof PartPassing && sink.unwanted;
}

/** Whether `sink` (`startResponseBody`'s) passes a tap's part, whose rest may become `bodyUnwanted`: the transports ask that per chunk only then. */
export function passesPart(sink: Writable): boolean {
  return sink instanceof PartPassing;
}
