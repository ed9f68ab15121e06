import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { ClientResponse, GatewayContext } from '../context.ts';
import { stopBodyAfterAnswer } from '../entrypoints/http2-request.ts';
import { applyHeaderHooks } from './answer-headers.ts';
import { encodeGrpcMessage, grpcStatusOf } from './grpc-status.ts';
import { grpcWebBodyReader, grpcWebTrailerFrame, isGrpcWebText, isGrpcWebType, type GrpcWebTrailerReader } from './grpc-web-trailers.ts';

/**
 * Ends a response that is only headers, as a gRPC Trailers-Only answer: towards an HTTP/2 client one
 * HEADERS frame with END_STREAM. grpc-js reads `grpc-status` from the first HEADERS frame only when
 * it ends the stream; `writeHead` + `end()` would send the headers first and end with an empty DATA
 * frame, leaving the client with "call ended without gRPC status". The compatibility API sends them
 * in one frame when `end()` finds the headers not yet sent, so the headers are set, not written.
 */
export function sendTrailersOnly(response: ClientResponse, status: number, headers: OutgoingHttpHeaders): void {
  if (response.headersSent || response.destroyed) return;
  response.statusCode = status;
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) response.setHeader(name, value);
  }
  response.end();
}

/**
 * The content type of the answer to a gRPC call, the gateway's own or a translated one: for a
 * gRPC-Web call `application/grpc-web` or `-web-text` with the call's own codec suffix (`+proto`,
 * `+json`…, parameters dropped), else `application/grpc`. The encoding is the one the call's
 * `accept` names (its first gRPC-Web media type, parameters ignored), as PROTOCOL-WEB.md has the
 * client ask for a text answer ("Accept: application/grpc-web-text", which grpc-web's JavaScript
 * client sends with every -text call) and Envoy's filter answers; with no gRPC-Web type in
 * `accept` (none, `*\/*`), the call's own, where Envoy's answers binary. A gRPC-Web client refuses
 * an answer of another type (connect-es: "unexpected content type").
 */
export function grpcAnswerContentType(requestType: string | undefined, accept?: string): string {
  if (requestType === undefined || !isGrpcWebType(requestType)) return 'application/grpc';
  const end = requestType.indexOf(';');
  const rest = (end < 0 ? requestType : requestType.slice(0, end)).trim().slice('application/grpc-web'.length);
  const textCall = rest.startsWith('-text');
  const suffix = textCall ? rest.slice('-text'.length) : rest;
  return `application/grpc-web${(acceptsText(accept) ?? textCall) ? '-text' : ''}${suffix}`;
}

/**
 * Whether `accept` asks for a `-text` answer (true) or a binary one (false) by its first gRPC-Web
 * media type, in any case (RFC 9110 §8.3.1), leaving out a range of weight 0, which refuses it
 * (§12.4.2); undefined when it names none.
 */
function acceptsText(accept: string | undefined): boolean | undefined {
  if (accept === undefined) return undefined;
  const lower = accept.toLowerCase();
  if (!lower.includes('application/grpc-web')) return undefined;
  for (const range of lower.split(',')) {
    const [name = '', ...parameters] = range.split(';');
    const type = name.trim();
    if (!isGrpcWebType(type) || parameters.some((parameter) => ZERO_WEIGHT.test(parameter))) continue;
    return isGrpcWebText(type);
  }
  return undefined;
}

/** A media range's `q` parameter of 0 (`q=0`, `q=0.000`): not acceptable. */
const ZERO_WEIGHT = /^\s*q\s*=\s*0(?:\.0{0,3})?\s*$/;

/**
 * Answers a gRPC caller on the gateway's behalf: HTTP 200, the call's content type
 * (`grpcAnswerContentType`), the mapped `grpc-status` and the message as `grpc-message`,
 * Trailers-Only: headers and no body, which gRPC-Web allows as well ("Trailers may be sent together
 * with response headers, with no message in the body", PROTOCOL-WEB.md), and which browsers read
 * over HTTP/1.1, where they see no HTTP trailers. Does nothing once headers were sent.
 */
export function sendGrpcErrorAnswer(context: GatewayContext, status: number, error: string, message: string, extraHeaders: Readonly<Record<string, string>>): void {
  const response = context.response;
  if (response.headersSent || response.destroyed) return;
  const grpcStatus = grpcStatusOf(status, error);
  context.outcome.bytesOut = 0;
  context.outcome.grpcStatus = grpcStatus;
  const headers = applyHeaderHooks(context, 200, { ...extraHeaders, 'x-request-id': context.requestId });
  sendTrailersOnly(response, 200, {
    ...headers,
    'content-type': grpcAnswerContentType(context.request.headers['content-type'], context.request.headers.accept),
    'grpc-status': String(grpcStatus),
    'grpc-message': encodeGrpcMessage(message),
  });
}

/**
 * Ends a gRPC response already under way whose upstream failed: the status goes in trailers (a
 * reset would leave the caller guessing), mapped from the failure's class. Destroys the response
 * when it cannot take trailers any more.
 */
export function endGrpcCall(context: GatewayContext, status: number, errorClass: string, message: string, error: Error): void {
  const response = context.response;
  if (response.destroyed || response.writableEnded) return void response.destroy(error);
  const grpcStatus = grpcStatusOf(status, errorClass);
  if (context.grpcWeb !== undefined && endTranslatedCall(context, grpcStatus, message, error)) return;
  const webBody = grpcWebBodyReader(context.outcome);
  if (webBody !== undefined) return endGrpcWebCall(context, webBody, grpcStatus, message, error);
  context.outcome.grpcStatus = grpcStatus;
  response.addTrailers({ 'grpc-status': String(grpcStatus), 'grpc-message': encodeGrpcMessage(message) });
  response.end();
  // A client-streaming call whose deadline passed mid-answer is still sending: asked to stop once its trailers are out.
  stopBodyAfterStatus(context);
}

/**
 * `endGrpcCall` for a gRPC-Web answer, whose client reads the status from a trailer frame in the
 * body (a browser sees no HTTP trailers): that frame (`grpc-status`, `grpc-message`; in base64 for
 * `application/grpc-web-text`) ends the body where the upstream's stopped between two frames.
 * Cut within a frame, or after a length the answer announced, nothing appended would read as a
 * frame: the response is destroyed, as any answer cut short is. One whose trailer frame went
 * through already has its status, and ends.
 */
function endGrpcWebCall(context: GatewayContext, body: GrpcWebTrailerReader, grpcStatus: number, message: string, error: Error): void {
  const response = context.response;
  if (body.status !== undefined) return void response.end();
  if (!body.mayAppendTrailers) return void response.destroy(error);
  context.outcome.grpcStatus = grpcStatus;
  const frame = grpcWebTrailerFrame({ 'grpc-status': String(grpcStatus), 'grpc-message': encodeGrpcMessage(message) });
  const bytes = body.text ? Buffer.from(frame.toString('base64'), 'latin1') : frame;
  context.outcome.bytesOut += bytes.length;
  response.end(bytes);
  stopBodyAfterStatus(context);
}

/**
 * `endGrpcCall` for a gRPC-Web call `grpcWeb` translated whose body is under way: the status ends
 * it as a trailer frame (`GrpcWebTranslation.endWithStatus`), or the response is destroyed when
 * the body stopped within a message. False when no translated body was started.
 */
function endTranslatedCall(context: GatewayContext, grpcStatus: number, message: string, error: Error): boolean {
  const ended = context.grpcWeb!.endWithStatus(grpcStatus, encodeGrpcMessage(message));
  if (ended === 'untranslated') return false;
  if (ended === 'cut') context.response.destroy(error);
  else {
    context.outcome.grpcStatus = grpcStatus;
    stopBodyAfterStatus(context);
  }
  return true;
}

/**
 * Asks the HTTP/2 client of a gRPC call whose answer has ended (its status is out) and that is still
 * sending to stop: RST_STREAM NO_ERROR once the answer's END_STREAM is out (`stopBodyAfterAnswer`).
 * The status ends the call; what the client sends after it nobody reads. Nothing over HTTP/1.1.
 */
export function stopBodyAfterStatus(context: GatewayContext): void {
  const request = context.request as IncomingMessage;
  if (request.httpVersionMajor === 2 && !request.complete) stopBodyAfterAnswer(context.request as unknown as Http2ServerRequest);
}
