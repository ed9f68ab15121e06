import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders as Http2Headers, type OutgoingHttpHeaders as Http2OutgoingHeaders } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import { sendTrailersOnly } from '../proxy/grpc-answer.ts';
import { AnswerHeadError, applyHeaderHooks, forgetRefusedHead } from '../proxy/answer-headers.ts';
import { isGrpcRequest, parseGrpcStatus } from '../proxy/grpc-status.ts';
import { readGrpcStatus, type GrpcWebTrailerReader } from '../proxy/grpc-web-trailers.ts';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { isValidFinalStatus } from '../http-status.ts';
import { withoutHopByHop } from '../proxy/hop-by-hop.ts';
import { classifyUpstreamError, countsAgainstUpstream } from '../proxy/upstream-error.ts';
import { CallbackDeadline } from './attempt-deadline.ts';
import { ClientHold } from './transport-client-hold.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { refusalClassOf, requestHeaders, responseHeaders, unsendableHead } from './transport-http2-headers.ts';
import { cancelledByGateway, cancelStream, countRefusedAnswer, dropBody, peerEnded, watchPeerEnd } from './transport-http2-peer-end.ts';
import { BodyRefusedError, ClientGoneError, HeadTooLargeError, InvalidStatusError, NEVER_SENT, reportAttempt, sampleHead, sendTransformed, startCallDeadline, UpstreamTimeoutError, uploadWaitsForClient } from './transport-outcome.ts';
import { ErrorPageDrain } from '../proxy/error-page.ts';
import { countBodyBytes, readsOnWithoutClient, sendReplacement, startResponseBody, stopTap, tapsBody, whenBodyUnwanted } from './transport-response-body.ts';

const { HTTP2_HEADER_STATUS, NGHTTP2_FLAG_END_STREAM, NGHTTP2_FRAME_SIZE_ERROR } = constants;

/** The HEADERS frame type (RFC 9113 §6.2), as a stream's 'frameError' names it. */
const HEADERS_FRAME = 1;

/**
 * `Transport.attempt` over one HTTP/2 session: a stream per attempt, the request body piped in,
 * the response streamed to the client with back-pressure and its trailers forwarded
 * (`response.addTrailers`; an HTTP/1.1 client gets them with a chunked answer). A gRPC
 * Trailers-Only answer (headers with END_STREAM) stays one HEADERS frame with END_STREAM. With
 * `timeouts.deadlineMs` the whole attempt is bounded (a gRPC call's deadline; `deadline-exceeded`).
 * Reports the outcome to the pick exactly once. Never rejects.
 *
 * `sessions` reserves a stream on one of the transport's live sessions, opening one when none has
 * room or waiting for one, and `returns.release` gives it back: exactly once per session `sessions`
 * resolved with, when the stream opened on it closes or when none is opened (the attempt ended
 * first, node:http2 refused the request). An attempt that ends while its reservation still waits
 * for a stream takes it back with `returns.withdraw`, and holds nothing. A stream the session
 * refused unprocessed because it was going away (a GOAWAY that raced the stream: RFC 9113 §6.8 and
 * §8.7 say it may be sent again) goes again on a fresh session, up to `REOPENS` times, with what
 * the refused stream had taken of the request body (up to `RESEND_BYTES`; a larger body is not
 * sent again, and fails as before): a server rotating its connections gracefully
 * (nginx after `keepalive_requests`, 1,000 by default) is no failure of the upstream's.
 *
 * The headers and idle-body timeouts blame the upstream only for its own silence, as towards
 * HTTP/1.1 (`transport-http1-attempt.ts`): the wait for the response headers starts over at each
 * chunk of the request body and at its end, and does not expire while the client is still sending
 * a body the upstream has taken; the idle-body timeout starts over at each chunk either way (a
 * bidirectional stream is alive while one side talks) and stops while the client's back-pressure
 * holds the response back.
 */
export function http2Attempt(
  context: GatewayContext,
  sessions: () => Promise<ClientHttp2Session>,
  pick: PickedEndpoint,
  timeouts: AttemptTimeouts,
  body: Readable | null,
  scheme: 'http' | 'https',
  returns: Http2StreamReturns = NOTHING_TO_RETURN,
): Promise<AttemptResult> {
  const { response } = context;
  const { release } = returns;
  /**
   * Where the latency sample starts (`latencySample`): the attempt's start, then when its stream
   * opens (a session's queue for a stream and its connect are behind it). Not the end of the request
   * body: the upload moves at the pace of the instance's flow-control window, so an instance slow to
   * read it would have that time left out.
   */
  let started = performance.now();
  return new Promise<AttemptResult>((resolve) => {
    let session = sessions();
    let stream: ClientHttp2Stream | undefined;
    /** A stream was opened for the request, on this session or on one that refused it before a reopen: part of it may have reached the instance. */
    let streamOpened = false;
    let reopens = 0;
    /**
     * The request body's chunks that went into the stream, kept until the response starts so that a
     * refused stream can be sent again; undefined when there is no body to keep, or once it is more
     * than `RESEND_BYTES` (such a request is not sent again).
     */
    let sent: Buffer[] | undefined = body === null ? undefined : [];
    let sentBytes = 0;
    /** The head of the last stream opened: an upstream's refusal of it is a 431 when it is large. */
    let sentHead: Http2OutgoingHeaders | undefined;
    let bodyWatched = false;
    let responseStarted = false;
    let settled = false;
    // Until the session promise settles.
    let connecting = true;
    let status = 0;
    /** When the response's HEADERS came: the end of the attempt's latency sample (`latencySample`). */
    let answeredAt: number | undefined;
    // A gRPC call's `grpc-status` (Trailers-Only headers, else the trailers): it decides the outcome, which is reported at the stream's end.
    let grpcStatus: number | undefined;
    const timeout = new CallbackDeadline(() => timedOut());
    /** Where the body goes when it passes a tap (`whenBodyUnwanted`): it may be read on for the tap alone, or its rest left unread. */
    let tapped: Writable | undefined;
    /** The times the client's back-pressure held the body still; made at the first (most answers never have one). */
    let hold: ClientHold | undefined;
    /** The answer's body is dropped (`leaveUnread`): read on or cancelled by `dropBody`, the attempt ending with it. */
    let dropping = false;

    /** Stops the timers and the client's 'close' listener; true the first time. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      sent = undefined;
      timeout.stop();
      clearTimeout(deadlineTimer);
      response.off('close', onClientClose);
      return true;
    };
    const finish = (result: AttemptResult) => {
      if (!settle()) return;
      if (!result.ok && stream && !stream.closed) cancelStream(stream);
      // A body read on for a tap alone has nobody else to tell that it broke off.
      if (!result.ok && tapped !== undefined) stopTap(tapped);
      if (!result.ok) body?.unpipe();
      reportAttempt(pick, started, answeredAt, status, result, grpcStatus, context.outcome);
      resolve(result);
    };
    const fail = (error: Error) => {
      // The gateway cancelled the body it dropped (`leaveUnread`): the answer was taken whole enough.
      if (dropping && stream !== undefined && cancelledByGateway(stream)) return finish({ ok: true });
      let errorClass = classifyUpstreamError(error, responseStarted);
      if (errorClass === 'upstream-refused' && sentHead !== undefined) errorClass = refusalClassOf(sentHead);
      // The upstream closed a stream its client had stopped reading (its send timeout): the client's doing.
      if (hold !== undefined) errorClass = hold.classOf(errorClass, performance.now(), error);
      const failed = (unsent: boolean): Extract<AttemptResult, { ok: false }> => (unsent ? { ok: false, errorClass, responseStarted, error, unsent } : { ok: false, errorClass, responseStarted, error });
      if (!connecting) {
        // No stream was ever opened and the failure is not the instance's (the gateway's pool full or
        // closed, node:http2 refusing the request's headers, the client gone): nothing of the request
        // left the gateway, so the attempt is none of the instance's requests. A connect failure
        // stays the instance's attempt, and its failure.
        return finish(failed(!streamOpened && !countsAgainstUpstream(errorClass)));
      }
      // Unsent unless an earlier stream, refused by a going-away session, took the request to the instance before this one.
      const result = failed(!streamOpened);
      // Ended while the session is still connecting (the call's deadline, the client gone): the
      // receiver gets the result now, and the pick how the connection went, since one that fails
      // is the instance's fault whatever ended the attempt; else no stream is opened. A
      // reservation still queued for a stream leaves the queue, and there is nothing to wait for.
      // Either way the request never went out on this session: its latency estimate and passive
      // health hear nothing of it (the wait measured the gateway's own congestion or the connect,
      // not an answer, and a refused stream is no failure), the pick is released unused, and the
      // request's result keeps its class; as towards HTTP/1.1, where undici drops such a request unsent.
      if (!settle()) return;
      if (returns.withdraw(session)) {
        pick.done(NEVER_SENT);
        return resolve(result);
      }
      const released = session.then(
        () => pick.done(NEVER_SENT),
        (connectError: Error) => reportAttempt(pick, started, undefined, 0, { ok: false, errorClass: classifyUpstreamError(connectError, false), responseStarted: false, error: connectError }),
      );
      resolve({ ...result, released });
    };
    /**
     * The client's answer is done and nobody wants the rest of the body (`whenBodyUnwanted`): the
     * attempt is answered (the upstream did nothing wrong), and its stream cancelled unread.
     */
    const leaveBody = (opened: ClientHttp2Stream) => {
      // The body came to its end first.
      if (settled) return;
      finish({ ok: true });
      if (!opened.closed) cancelStream(opened);
    };
    /**
     * Nobody reads the body of an answer the client got another in place of (an `errors` page, a
     * `cache`'s stored answer, a gRPC-Web call's status for an answer that is not gRPC): the body is dropped (`dropBody`): read to its end when it is small
     * and ends soon, else its stream cancelled rather than read until the idle-body timeout, holding
     * the stream and the request's slots meanwhile. The attempt ends with the body, as a forwarded
     * one's does: answered at its end, or when the gateway cancelled it (the gateway's choice, nobody's
     * fault), and failed when the upstream reset it or its connection broke first
     * (`reset-after-headers`, the instance's, as towards HTTP/1.1). Its bound is `dropBody`'s, not
     * the idle-body timeout or the call's deadline: the client was answered already.
     */
    const leaveUnread = (opened: ClientHttp2Stream, flags: number) => {
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) return;
      dropping = true;
      timeout.stop();
      clearTimeout(deadlineTimer);
      dropBody(opened);
    };
    const timedOut = () => {
      if (responseStarted) return fail(new UpstreamTimeoutError('SB_UPSTREAM_BODY_TIMEOUT', `no response data for ${timeouts.bodyTimeoutMs} ms`));
      // The upstream is waiting for the client's upload (the stream queues what it has not sent).
      if (uploadWaitsForClient(body, stream?.writableLength ?? 0)) return timeout.start(timeouts.headersTimeoutMs);
      fail(new UpstreamTimeoutError('SB_UPSTREAM_HEADERS_TIMEOUT', `no response headers within ${timeouts.headersTimeoutMs} ms`));
    };
    const onClientClose = () => {
      // Not `writableFinished`: node:http2's response reads finished once its stream has closed, a reset included.
      if (!response.writableEnded && !(tapped !== undefined && readsOnWithoutClient(tapped))) fail(new ClientGoneError());
    };
    response.once('close', onClientClose);
    // The call's own deadline counts from the attempt's start, connecting included.
    const deadlineTimer = startCallDeadline(timeouts.deadlineMs, fail);

    /**
     * Pipes the request body into `opened`, after what an earlier, refused stream had taken of it;
     * the first time, also watches it (a 'data' listener before the first pipe would let the body flow away).
     */
    const sendBody = (upload: NonNullable<typeof body>, opened: ClientHttp2Stream) => {
      // A body refused as it streams (past its route's limit, not decodable; it may fail before the
      // stream opens) cancels the stream: the upstream never sees its end. Any other failure of the
      // body is the client's (cut, or stalled past `limits.requestTimeout`): its response closes,
      // unless its listener answered it already (that 408), so the body's failure cancels the stream
      // too, else it stays open, waiting for the rest, and on its instance's requests in flight.
      if (upload.errored) return fail(bodyFailure(upload.errored));
      if (sent !== undefined) for (const chunk of sent) opened.write(chunk);
      upload.pipe(opened);
      if (bodyWatched) return;
      bodyWatched = true;
      // The attempt was answered before the upload ended (an upstream that answered it whole at
      // once, a page the gateway replaced): once the body fails or the client's response closes, the
      // upload never ends, so its stream is cancelled, else it stays open for good on its session,
      // waiting for the rest. node's HTTP/1.1 listener takes a request whose answer is out off its
      // queue, and its client's going then neither fails nor ends it: only the close says so.
      const leaveUpload = () => {
        if (settled && !upload.readableEnded && stream !== undefined && !stream.closed && !stream.destroyed) cancelStream(stream);
      };
      upload.once('error', (error: Error) => {
        if (!settled) return fail(bodyFailure(error));
        leaveUpload();
      });
      response.once('close', leaveUpload);
      // Either phase's deadline starts over as the upload moves; the headers' wait from its end.
      upload.on('data', (chunk: Buffer) => {
        if (sent !== undefined) {
          sentBytes += chunk.length;
          if (sentBytes > RESEND_BYTES) sent = undefined;
          else sent.push(chunk);
        }
        timeout.extend();
      });
      upload.once('end', () => {
        if (!settled && !responseStarted && stream !== undefined) timeout.start(timeouts.headersTimeoutMs);
      });
    };
    /** Sends the request again on a fresh session when `error` says the going-away `live` refused it unprocessed; true if so. */
    const reopened = (live: ClientHttp2Session, error: Error): boolean => {
      if (settled || !live.closed || reopens >= REOPENS || responseStarted || (body !== null && sent === undefined) || !refusedUnprocessed(error)) return false;
      reopens += 1;
      if (stream !== undefined && body) body.unpipe(stream);
      stream = undefined;
      timeout.stop();
      connecting = true;
      session = sessions();
      open(session);
      return true;
    };
    const open = (pending: Promise<ClientHttp2Session>) => pending.then((live) => {
      connecting = false;
      // From here the reservation on `live` is given back once: at once when no stream is opened, else when the stream closes.
      if (settled) return release(live);
      if (response.destroyed) {
        release(live);
        return fail(new ClientGoneError());
      }
      let opened: ClientHttp2Stream;
      const head = requestHeaders(context, pick, scheme);
      const unsendable = unsendableHead(live, head);
      if (unsendable !== undefined) {
        release(live);
        return fail(unsendable);
      }
      try {
        opened = live.request(head, { endStream: body === null });
      } catch (error) {
        release(live);
        if (reopened(live, error as Error)) return;
        return fail(error as Error);
      }
      stream = opened;
      started = performance.now();
      streamOpened = true;
      sentHead = head;
      watchPeerEnd(opened);
      // A backstop, should node:http2 weigh a head otherwise than `unsendableHead`: a header block it
      // will not send after all it refuses itself (REFUSED_STREAM next), nothing sent, so the
      // client's head is too large for any instance, not one refusing the stream (`connect-refused`,
      // counted and retried).
      opened.once('frameError', (type: number, code: number) => {
        if (type !== HEADERS_FRAME || code !== NGHTTP2_FRAME_SIZE_ERROR || stream !== opened) return;
        // Unless an earlier stream, refused by a going-away session, took the request to the instance.
        if (reopens === 0) streamOpened = false;
        fail(new HeadTooLargeError('the request head is larger than node:http2 sends in one header block (its maxSendHeaderBlockLength)'));
      });
      timeout.start(timeouts.headersTimeoutMs);
      if (body) sendBody(body, opened);
      let buffered: Buffer[] | undefined;
      let outgoing: OutgoingHttpHeaders | undefined;
      // Where the body goes once the head is written: the response, or its encoder.
      let sink: Writable | undefined;
      let trailersOnly = false;
      // The upstream ended its answer (END_STREAM): the stream's close after it is no failure.
      let upstreamEnded = false;
      // A gRPC-Web answer that is not Trailers-Only has its status in the body's last frame.
      let grpcWeb: GrpcWebTrailerReader | undefined;
      opened.once('response', (headers: Http2Headers, flags: number) => {
        // Emitted a tick after the headers were parsed: the attempt may have ended meanwhile.
        if (settled) return;
        status = Number(headers[HTTP2_HEADER_STATUS]);
        if (!isValidFinalStatus(status)) return fail(new InvalidStatusError(status));
        answeredAt = performance.now();
        sampleHead(pick, status, answeredAt - started);
        // The stream was taken: what it sent of the body is no longer needed.
        sent = undefined;
        timeout.start(timeouts.bodyTimeoutMs);
        context.outcome.status = status;
        outgoing = responseHeaders(headers);
        // An answer of the gateway's own in this one's place (the `cache`'s stored one, for a 304 to its revalidation or a 5xx).
        const replacement = context.answerReplacer?.(status, outgoing);
        if (replacement !== undefined) {
          outgoing = replacement.headers;
          context.outcome.status = replacement.outcomeStatus ?? replacement.status;
          context.outcome.upstreamStatus = status;
        }
        try {
          applyHeaderHooks(context, replacement?.status ?? status, outgoing);
        } catch (error) {
          // Nothing went to the client yet: the proxy answers 500 (`internal`), the upstream not blamed.
          return fail(error as Error);
        }
        // From here the client may have part of the answer.
        responseStarted = true;
        try {
          if (replacement !== undefined) {
            sink = sendReplacement(context, replacement.status, outgoing, replacement.body);
            return leaveUnread(opened, flags);
          }
          const headerStatus = headers['grpc-status'];
          if (isGrpcRequest(context.request.headers)) {
            grpcWeb = readGrpcStatus(context, headers as IncomingHttpHeaders);
            grpcStatus = context.outcome.grpcStatus;
          }
          // Trailers-Only: the status is in these headers and there is nothing after them.
          if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0 && headerStatus !== undefined) {
            trailersOnly = true;
            sendTrailersOnly(response, status, outgoing);
          } else if (context.responseBodyTransforms.length > 0) buffered = [];
          else {
            sink = startResponseBody(context, status, outgoing);
            // An `errors` page answered in the body's place, and no tap reads it on (a cache inside `errors` does).
            if (sink instanceof ErrorPageDrain) return leaveUnread(opened, flags);
          }
        } catch (error) {
          // The client's response refused the head (`AnswerHeadError`): the gateway's failure, never
          // the upstream's; with nothing of it sent, the proxy answers 500 `internal` in its place.
          responseStarted = response.headersSent;
          forgetRefusedHead(response, outgoing);
          return fail(new AnswerHeadError(error));
        }
        if (sink !== undefined && tapsBody(sink) && whenBodyUnwanted(sink, () => leaveBody(opened))) tapped = sink;
      });
      opened.on('data', (chunk: Buffer) => {
        if (settled || dropping) return;
        timeout.extend();
        grpcWeb?.push(chunk);
        if (buffered) return void buffered.push(chunk);
        countBodyBytes(context, sink!, chunk.length);
        // Both client response kinds (HTTP/1.1 and HTTP/2), and an encoder, are writable streams with back-pressure.
        // A tap's pass-through may leave the body from inside this write (`whenBodyUnwanted`): the attempt is then over.
        if (!sink!.write(chunk) && !settled) {
          // A slow client is not the upstream's silence: the idle-body timeout waits for it.
          timeout.stop();
          const held = (hold ??= new ClientHold(false));
          held.begin(performance.now());
          opened.pause();
          sink!.once('drain', () => {
            held.end(performance.now());
            if (!settled) timeout.start(timeouts.bodyTimeoutMs);
            opened.resume();
          });
        }
      });
      opened.once('trailers', (trailers: Http2Headers) => {
        // Those of a body the gateway drops (`leaveUnread`) are dropped with it: the client has the answer
        // put in its place, whose status the outcome keeps, and a `grpc-status` of theirs neither
        // blames the instance nor excuses it.
        if (dropping) return;
        const trailerStatus = trailers['grpc-status'];
        // Trailers after the attempt ended (a deadline, a reset) must not change the outcome it reported.
        if (trailerStatus !== undefined && !settled) grpcStatus = countedGrpcStatus(context, trailerStatus);
        if (buffered || settled) return;
        const forwarded = withoutHopByHop(trailers as IncomingHttpHeaders);
        // A gRPC-Web call's translated answer carries them as its body's last frame.
        if (context.grpcWeb?.takeTrailers(forwarded) !== true) response.addTrailers(forwarded as Record<string, string>);
      });
      opened.once('end', () => {
        if (settled || !responseStarted) return;
        // node:http2 also ends the readable side of a stream that closed before the upstream's
        // END_STREAM: its session's connection gone mid-answer, or an RST_STREAM, NO_ERROR included
        // (RFC 9113 §8.1: before END_STREAM that means the answer was truncated). That answer was cut, not ended.
        if (!peerEnded(opened)) return fail(streamClosedError(opened));
        upstreamEnded = true;
        // The upstream has said all: a response transform's time is not its silence.
        timeout.stop();
        if (grpcWeb?.status !== undefined) grpcStatus = context.outcome.grpcStatus = grpcWeb.status;
        // A client still sending is asked to stop once its answer is out (the proxy, `stopBodyAfterStatus`).
        if (trailersOnly) return finish({ ok: true });
        if (!buffered) {
          sink!.end();
          return finish({ ok: true });
        }
        void sendTransformed(context, status, outgoing!, buffered).then(finish);
      });
      opened.once('error', (error: Error) => {
        if (!responseStarted && classifyUpstreamError(error, false) === 'http2-protocol-error') countRefusedAnswer(live);
        if (stream === opened && !reopened(live, error)) fail(error);
      });
      // A stream reset with NO_ERROR, or closed before its end (its connection gone, before the
      // response headers or after), emits no 'error'.
      opened.once('close', () => {
        release(live);
        if (!settled && stream === opened && !upstreamEnded) fail(streamClosedError(opened));
      });
    }, (error: Error) => {
      connecting = false;
      fail(error);
    });
    open(session);
  });
}

/** What an attempt gives back to the pool its `sessions` reserved streams from (`Http2SessionPool`). */
export interface Http2StreamReturns {
  /** Gives back a stream reserved on `session`, once. */
  readonly release: (session: ClientHttp2Session) => void;
  /** Takes back `reservation` while it waits for a stream; true if it did (it never settles then). */
  readonly withdraw: (reservation: Promise<ClientHttp2Session>) => boolean;
}

/** For callers whose `sessions` reserves nothing. */
const NOTHING_TO_RETURN: Http2StreamReturns = { release: () => undefined, withdraw: () => false };

/** How many times one attempt's request goes again on a fresh session after a going-away one refused it. */
export const REOPENS = 2;

/** The most of a request body kept to send again after a refused stream (a unary gRPC call's message fits many times). */
export const RESEND_BYTES = 64 * 1024;

/** The failure of a stream that closed before the upstream ended it (`reset-before-headers` or `reset-after-headers`). */
function streamClosedError(stream: ClientHttp2Stream): Error {
  return Object.assign(new Error(`the upstream closed the stream (code ${stream.rstCode})`), { code: 'ERR_HTTP2_STREAM_CANCEL' });
}

/** The session refused the stream before processing it: a REFUSED_STREAM reset, or a GOAWAY before the stream could start. */
function refusedUnprocessed(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ERR_HTTP2_GOAWAY_SESSION' || (code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(error.message));
}

/**
 * When the request is a gRPC call, records the `grpc-status` an answer carries as the request's
 * outcome (access log, metrics) and returns it for the attempt's outcome (`answerClassOf`);
 * undefined otherwise, as Envoy reads it for gRPC requests only (the attempt loop does the same):
 * a JSON request to a gRPC-gateway that happens to send one is no failed call.
 */
function countedGrpcStatus(context: GatewayContext, value: string | string[]): number | undefined {
  if (!isGrpcRequest(context.request.headers)) return undefined;
  return (context.outcome.grpcStatus = parseGrpcStatus(value));
}

/** What a request body's failure ends its attempt with: the refusal itself, or the client's going, which blames no instance. */
function bodyFailure(error: Error): Error {
  return error instanceof BodyRefusedError ? error : new ClientGoneError();
}
