import type { OutgoingHttpHeaders } from 'node:http';
import type { Transform, Writable } from 'node:stream';
import type { ClientResponse, GatewayContext } from '../context.ts';
import { errorPageBody, errorPageFor, withErrorPageHeaders } from '../proxy/error-page.ts';

/** Destroys the encoder of a response that closed: a client gone mid-answer, or a cut one. */
function stopEncoder(encoder: Transform): void {
  if (!encoder.writableEnded || !encoder.readableEnded) encoder.destroy();
}

/**
 * Counts `length` bytes of an answer's body, just written to `sink`, as sent to the client
 * (`RequestOutcome.bytesOut`), unless `sink` is an encoder: what went to the client then is the
 * encoded bytes, which `startResponseBody` counts as they leave it (as nginx's `$body_bytes_sent`).
 */
export function countBodyBytes(context: GatewayContext, sink: Writable, length: number): void {
  if (sink === context.response) context.outcome.bytesOut += length;
}

/**
 * Writes an upstream answer's head to the client and returns where its body goes: the response
 * itself, or the encoder the route's `responseEncoder` chose (which may edit `outgoing` first), or,
 * for a status an `errors` page stands for, the sink that drops the body and gives out the page instead
 * (`outgoing` then the page's, not compressed), piped into the response, its output counted in `bytesOut` (`countBodyBytes`). Either is a writable with back-pressure: `write` returns false and
 * 'drain' follows once the client (through the encoder) took what it had. A response destroyed
 * (the client gone, or the proxy cutting an answer whose upstream failed) destroys its encoder, so
 * a truncated answer never gets a clean end; an encoder that fails destroys the response.
 */
export function startResponseBody(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders): Writable {
  const response = context.response;
  const page = errorPageFor(context, status);
  const encoder = page ? errorPageBody(page, context.request.method === 'HEAD') : context.responseEncoder?.(status, outgoing, context);
  if (page) withErrorPageHeaders(outgoing, page);
  response.writeHead(status, outgoing);
  if (encoder === undefined) return response as Writable;
  pipeEncoded(encoder, response, context.outcome);
  return encoder;
}

function pipeEncoded(encoder: Transform, response: ClientResponse, outcome: GatewayContext['outcome']): void {
  encoder.once('error', (error) => response.destroy(error));
  // Beside pipe's own 'data' listener: the stream stays flowing as pipe's back-pressure lets it.
  encoder.on('data', (chunk: Buffer) => (outcome.bytesOut += chunk.length));
  // A response the client left as the head came (the attempt then stops the upstream) may have
  // emitted its 'close' already: nothing would destroy the encoder, nor end it.
  if (response.destroyed) return void encoder.destroy();
  encoder.pipe(response as Writable);
  response.once('close', () => stopEncoder(encoder));
}
