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
    tee = passingPart(tap, tap.part);
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
 * body goes on to its end, which ends the response.
 */
function passingPart(tap: ResponseBodyTap, part: ClientPart): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      tap.chunk(chunk);
      const from = Math.max(part.start - offset, 0);
      const to = Math.min(part.end - offset, chunk.length);
      offset += chunk.length;
      done(null, to > from ? chunk.subarray(from, to) : undefined);
    },
  });
}
