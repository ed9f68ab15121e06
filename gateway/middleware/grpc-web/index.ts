import type { OutgoingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import type { AnswerReplacer, GatewayContext, GrpcWebTranslation, HeldAnswer, Middleware, ResponseHeadersHook } from '../../context.ts';
import { REPLACED_BODY_HEADERS } from '../../proxy/error-page.ts';
import { grpcAnswerContentType } from '../../proxy/grpc-answer.ts';
import { encodeGrpcMessage, grpcStatusOfHttpAnswer } from '../../proxy/grpc-status.ts';
import { isGrpcWebText, isGrpcWebType, isPlainGrpcType } from '../../proxy/grpc-web-trailers.ts';
import { GrpcWebAnswerBody, GrpcWebTextDecoder } from './grpc-web-codec.ts';

export { GrpcWebAnswerBody, GrpcWebTextDecoder } from './grpc-web-codec.ts';

/**
 * The gRPC content type a gRPC-Web call's goes upstream as: `application/grpc-web` and
 * `-web-text` as `application/grpc`, a `+proto`, `+json`… suffix kept, parameters dropped.
 */
export function grpcTypeOf(webType: string): string {
  const rest = grpcAnswerContentType(webType).slice('application/grpc-web'.length);
  const suffix = rest.startsWith('-text') ? rest.slice('-text'.length) : rest;
  return suffix.startsWith('+') ? `application/grpc${suffix}` : 'application/grpc';
}

/**
 * One gRPC-Web call sent upstream as gRPC: the answer's head is translated by `translateHead`
 * (a header hook, so a Trailers-Only answer, which has no body, is too), its body by the
 * `GrpcWebAnswerBody` `startBody` makes.
 */
class GrpcWebCall implements GrpcWebTranslation {
  /** The answer's content type (`grpcAnswerContentType`): the call's codec, the encoding its `accept` asks for, else its own. */
  private readonly contentType: string;
  /** The call's body is base64 (`-text`), decoded on its way upstream. */
  readonly textCall: boolean;
  /** The answer goes in base64 (`-text`). */
  private readonly textAnswer: boolean;
  /** The answer is gRPC and its head was translated: its body is to be. */
  private translated = false;
  private body: GrpcWebAnswerBody | undefined = undefined;

  constructor(requestType: string, accept: string | undefined) {
    this.contentType = grpcAnswerContentType(requestType, accept);
    this.textCall = isGrpcWebText(requestType);
    this.textAnswer = isGrpcWebText(this.contentType);
  }

  /**
   * Gives a gRPC answer (or one with a `grpc-status`, whatever its type) the call's gRPC-Web type,
   * without the length its body will no longer have; leaves any other answer to `replaceAnswer`.
   */
  translateHead(headers: OutgoingHttpHeaders): void {
    const type = headers['content-type'];
    if (!isPlainGrpcType(type) && !(headers['grpc-status'] !== undefined && !isGrpcWebType(type as string | undefined))) return;
    headers['content-type'] = this.contentType;
    delete headers['content-length'];
    this.translated = true;
  }

  /**
   * The gRPC-Web status a client reads in place of an upstream answer that is not gRPC (an HTTP 502
   * page of a proxy in front, a 404 in text/plain), as Envoy's filter answers one: Trailers-Only,
   * HTTP 200, the call's content type, the HTTP status mapped by gRPC's table
   * (`grpcStatusOfHttpAnswer`) as `grpc-status`; the body, which a gRPC-Web client would read as
   * frames, is dropped. The outcome keeps the upstream's status. Undefined for a gRPC or gRPC-Web
   * answer, and for the gateway's own answers (`errorClass`), which are gRPC-Web already.
   */
  replaceAnswer(status: number, headers: OutgoingHttpHeaders, context: GatewayContext, errorClass: string | undefined): HeldAnswer | undefined {
    const type = headers['content-type'];
    // An answer with a `grpc-status` is a gRPC Trailers-Only one whatever its type says (Envoy's
    // filter leaves it so): its own status is the call's, translated by `translateHead`.
    if (errorClass !== undefined || headers['grpc-status'] !== undefined || (typeof type === 'string' && type.startsWith('application/grpc'))) return undefined;
    const grpcStatus = grpcStatusOfHttpAnswer(status);
    context.outcome.grpcStatus = grpcStatus;
    const replaced: OutgoingHttpHeaders = {};
    // The headers of the body it drops go with it (its length, encoding, validators, ranges), as an `errors` page drops them.
    for (const name in headers) if (!name.startsWith('content-')) replaced[name] = headers[name];
    for (const name of REPLACED_BODY_HEADERS) delete replaced[name];
    const what = typeof type === 'string' ? type.split(';')[0]!.trim() : 'no content type';
    replaced['content-type'] = this.contentType;
    replaced['content-length'] = 0;
    replaced['grpc-status'] = String(grpcStatus);
    replaced['grpc-message'] = encodeGrpcMessage(`the upstream answered HTTP ${status} (${what}), not gRPC`);
    return { status: 200, headers: replaced, body: Buffer.alloc(0), outcomeStatus: status };
  }

  startBody(): Transform | undefined {
    if (!this.translated) return undefined;
    return (this.body = new GrpcWebAnswerBody(this.textAnswer));
  }

  takeTrailers(trailers: OutgoingHttpHeaders): boolean {
    if (this.body === undefined) return false;
    this.body.takeTrailers(trailers);
    return true;
  }

  endWithStatus(grpcStatus: number, message: string): 'ended' | 'cut' | 'untranslated' {
    const body = this.body;
    if (body === undefined) return 'untranslated';
    if (!body.betweenMessages) return 'cut';
    body.takeTrailers({ 'grpc-status': String(grpcStatus), 'grpc-message': message });
    body.end();
    return 'ended';
  }
}

/** The answer head's translation, one function for every call (`GrpcWebCall.translateHead`). */
const translateHead: ResponseHeadersHook = (_status, headers, context) => (context.grpcWeb as GrpcWebCall | undefined)?.translateHead(headers);

/** A decoder for each `-text` call's request body (`limitedBody`). */
const textDecoder = (): Transform => new GrpcWebTextDecoder();

/**
 * Translates gRPC-Web calls into gRPC for the instance (Envoy's `envoy.filters.http.grpc_web`,
 * Traefik's `grpcWeb`), so that a plain gRPC server serves browsers: the call's content type
 * `application/grpc-web[-text][+proto…]` goes as `application/grpc[+proto…]` with `te: trailers`,
 * a `-text` body decoded from base64 as it streams; `x-grpc-web` and `x-user-agent` go on as they
 * came, as Envoy leaves them. A gRPC answer comes back with the call's type in the encoding its
 * `accept` asks for (`grpcAnswerContentType`), its trailers as the body's last frame (in base64
 * with the rest for `-text`), a Trailers-Only answer as headers;
 * an answer that is not gRPC as a gRPC-Web status (`replaceAnswer`). Other requests pass
 * untouched, for one content-type test. CORS is the `cors` middleware's.
 */
export function grpcWeb(): Middleware {
  return async function grpcWeb(context, next) {
    const type = context.request.headers['content-type'];
    if (type !== undefined && isGrpcWebType(type)) translateCall(context, type);
    await next();
  };
}

/** Sets `context` up to send its gRPC-Web call of content type `type` as gRPC, and to translate its answer back. */
function translateCall(context: GatewayContext, type: string): void {
  const call = new GrpcWebCall(type, context.request.headers.accept);
  context.grpcWeb = call;
  const headers = context.upstream.headers;
  headers['content-type'] = grpcTypeOf(type);
  if (call.textCall) {
    // The decoded body is shorter than the one announced.
    delete headers['content-length'];
    context.set('requestBodyDecoder', textDecoder);
  }
  context.responseHeaderHooks.push(translateHead);
  const earlier = context.answerReplacer;
  const replacer: AnswerReplacer = (status, answerHeaders, errorClass) => earlier?.(status, answerHeaders, errorClass) ?? call.replaceAnswer(status, answerHeaders, context, errorClass);
  context.answerReplacer = replacer;
}
