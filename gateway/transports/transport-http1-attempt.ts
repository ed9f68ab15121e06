import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import { CLOSE_WATCHER, type CloseWatcher, type GatewayContext, type WatchedResponse } from '../context.ts';
import { isValidFinalStatus } from '../http-status.ts';
import { isGrpcRequest } from '../proxy/grpc-status.ts';
import { readGrpcStatus, type GrpcWebTrailerReader } from '../proxy/grpc-web-trailers.ts';
import { AnswerHeadError, applyHeaderHooks, forgetRefusedHead } from '../proxy/answer-headers.ts';
import { ErrorPageDrain } from '../proxy/error-page.ts';
import { responseHeadersForClient, sendableUpstreamHeaders, withoutHopByHop } from '../proxy/hop-by-hop.ts';
import { classifyUpstreamError, countsAgainstUpstream } from '../proxy/upstream-error.ts';
import type { AttemptReceiver, AttemptResult, AttemptTimeouts } from './transport.ts';
import { AttemptDeadline } from './attempt-deadline.ts';
import { ClientHold } from './transport-client-hold.ts';
import { countBodyBytes, readsOnWithoutClient, sendReplacement, startResponseBody, stopTap, tapsBody, whenBodyUnwanted } from './transport-response-body.ts';
import { warnGrpcWebOverHttp1 } from '../proxy/grpc-web-warning.ts';
import { BodyRefusedError, ClientGoneError, InvalidStatusError, NEVER_SENT, reportAttempt, sampleHead, sendTransformed, startCallDeadline, UpstreamTimeoutError, uploadWaitsForClient } from './transport-outcome.ts';

/**
 * `Transport.attempt` over an undici dispatcher (HTTP/1.1, in cleartext or TLS): `dispatch`, the
 * fastest undici API, streaming the response to the client with back-pressure both ways. Reports
 * the outcome to the pick exactly once. Never rejects.
 */
export function dispatchAttempt(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null): Promise<AttemptResult> {
  return new Promise<AttemptResult>((resolve) => dispatchAttemptThen(context, dispatcher, pick, timeouts, body, { attemptEnded: resolve }));
}

/** `dispatchAttempt` without a promise: `receiver.attemptEnded` gets the result once (`Transport.attemptThen`). */
export function dispatchAttemptThen(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: Readable | null, receiver: AttemptReceiver): void {
  const { upstream } = context;
  const handler = new Http1Attempt(context, pick, receiver, timeouts, body);
  // Usually the context's own headers (copied once, without hop-by-hop headers, when the request
  // came in); Host set here thus lands in them, where every attempt of the request sets it alike.
  const headers = sendableUpstreamHeaders(upstream.headers) as Record<string, string | string[]>;
  if (upstream.host !== undefined) headers.host = upstream.host;
  if (upstream.useInstanceHost) headers.host = pick.address;
  try {
    // `servername` (read by undici, missing from its types) is one value per pool, as the connector
    // sends its own SNI (`withServerName`): else undici takes it from each Host and closes the
    // keep-alive socket whenever the Host changes.
    dispatcher.dispatch(
      {
        path: upstream.path,
        method: upstream.method as Dispatcher.HttpMethod,
        headers,
        body,
        // The attempt runs the headers and body timeouts itself (attempt-deadline.ts); the pool has none.
        // A stale keep-alive socket is retried by the proxy, on another instance when there is one.
        reset: false,
        servername: pick.address,
      } as Dispatcher.DispatchOptions,
      handler,
    );
  } catch (error) {
    handler.fail(error as Error);
  }
}

/** `process.nextTick` target: resumes undici's parser from a fresh stack, outside any parser's callback. */
function resumeController(controller: Dispatcher.DispatchController): void {
  controller.resume();
}

/**
 * The phases of an `Http1Attempt`, in the order it goes through them (skipping some): it waits for
 * the response headers, then relays the response, then the receiver has the result, then the pick
 * has the outcome. A failure before the response goes from `WAITING` to `REPORTED` at once (the pick
 * is told, then the receiver); only a call whose deadline passed before undici started its request
 * stops at `SETTLED` (the client answered at once) until undici lets go of the request.
 */
const WAITING = 0;
/** The response started: its headers are the client's. */
const ANSWERING = 1;
/** The receiver has the result (the client is answered or being answered); the pick not yet. */
const SETTLED = 2;
/** The pick has the outcome, and the receiver the result. */
const REPORTED = 3;

/** The result of every attempt that answered: one object, not one per request. */
const ANSWERED: AttemptResult = Object.freeze({ ok: true });

/** The 'close' listener of an attempt on a response without a shared one (HTTP/2; `this` is the response). */
function abortOnClientClose(this: WatchedResponse): void {
  this[CLOSE_WATCHER]?.clientClosed();
}

/**
 * One attempt's state and undici handler in one object: the handler methods live on the prototype,
 * so an attempt allocates this object and one bound listener instead of a closure per callback.
 * Its timeouts, blaming only the guilty as undici's did: the response headers, from when the
 * request is written and again from the end of its body, never expiring while the upload waits for
 * the client (a slow upload is the client's time; one the upstream stops reading is not); then the
 * longest silence between response body chunks, not counted while the client's back-pressure holds
 * the body back. Extended by the WebSocket handshake (transport-websocket.ts), whose refusals are
 * answers like any other.
 */
export class Http1Attempt extends AttemptDeadline implements Dispatcher.DispatchHandler, CloseWatcher {
  /**
   * Where the attempt's latency sample starts (`latencySample`): its start, then when undici writes
   * the request on a connection (`onRequestStart`: the pool's queue and the connect are behind it).
   * Not the end of the request body: the gateway reads a body as fast as the instance takes it, so
   * an instance slow to read an upload would have that time left out.
   */
  private started = performance.now();
  /** `WAITING`, `ANSWERING`, `SETTLED` or `REPORTED`; it only moves forward. */
  private phase = WAITING;
  /** The call's deadline passed before undici started the request: it is dropped unsent when it would start. */
  private unsent: Error | undefined = undefined;
  /** undici dropped the request before writing any of it (refused at `onRequestStart`, or the client's body failed first): its failure is `unsent` whatever its class. */
  private dropped = false;
  /** Resolves the early result's `released` once the pick has been told. */
  private letGo: (() => void) | undefined = undefined;
  private buffered: Buffer[] | undefined = undefined;
  private outgoing: OutgoingHttpHeaders | undefined = undefined;
  /** Where the body goes once the head is written: the response, or its encoder (`startResponseBody`). */
  private sink: Writable | undefined = undefined;
  /** The body goes to an `ErrorPageDrain`: its chunks do not extend the body timeout, which then bounds it in all. */
  private draining = false;
  /** The sink passes the body by a tap (`whenBodyUnwanted`): it may be read on for the tap alone, or its rest left unread. */
  private tapped = false;
  /** The client's response refused the answer's head before sending any of it (`headRefused`): the attempt failed before the response started. */
  private headUnsent = false;
  /** The response came to its end: what undici reports afterwards (the connection closed by `endWithHead`) is no failure of it. */
  private ended = false;
  /** The times the client's back-pressure held the body still; made at the first (most answers never have one). */
  private hold: ClientHold | undefined = undefined;
  protected status = 0;
  /** When the response's head came (a final status, or a WebSocket's 101): the end of the attempt's latency sample (`latencySample`). */
  protected answeredAt: number | undefined = undefined;
  private controller: Dispatcher.DispatchController | undefined = undefined;
  private readonly response: GatewayContext['response'];
  /** Whether this attempt added its own 'close' listener (no shared one on the response). */
  private readonly ownListener: boolean;
  /** A gRPC-Web call's `grpc-status`, from the headers (Trailers-Only) or the body's trailer frame; it decides the outcome. */
  private grpcStatus: number | undefined = undefined;
  /** Reads the trailer frame of a gRPC-Web answer that is not Trailers-Only; undefined for every other answer. */
  private grpcWeb: GrpcWebTrailerReader | undefined = undefined;
  /** The call's own deadline (a gRPC call's `grpc-timeout`, over gRPC-Web); undefined for other requests. */
  private readonly callDeadline: NodeJS.Timeout | undefined;

  constructor(
    protected readonly context: GatewayContext,
    protected readonly pick: PickedEndpoint,
    private readonly receiver: AttemptReceiver,
    protected readonly timeouts: AttemptTimeouts,
    private readonly body: Readable | null,
  ) {
    super();
    // A call grpcWeb translated into gRPC needs an HTTP/2 instance.
    if (context.grpcWeb !== undefined) warnGrpcWebOverHttp1(context);
    this.response = context.response;
    const watched = this.response as WatchedResponse;
    // The HTTP/1.1 listener's 'close' listener calls the watcher: one listener per response, not two.
    this.ownListener = watched[CLOSE_WATCHER] !== null;
    watched[CLOSE_WATCHER] = this;
    // `on`, not `once`: `finish` removes it, and `once` would wrap it in a closure per attempt.
    if (this.ownListener) this.response.on('close', abortOnClientClose);
    // No closure for the requests without a deadline (all but gRPC-Web calls).
    this.callDeadline = timeouts.deadlineMs === undefined ? undefined : startCallDeadline(timeouts.deadlineMs, (error) => this.callDeadlinePassed(error));
  }

  /**
   * Ends the attempt as `deadline-exceeded`: through undici once the request started. Before that
   * (a connection still opening, or the pool's queue) the client is answered at once, and the pick
   * is told when undici lets go of the request: a connection that fails is the instance's fault
   * whatever the deadline; else the request is dropped unsent, the connection kept (`onRequestStart`),
   * and the pick released unused (`finish`).
   */
  private callDeadlinePassed(error: Error): void {
    if (this.controller) return void this.controller.abort(error);
    this.unsent = error;
    const released = new Promise<void>((resolve) => (this.letGo = resolve));
    this.settle({ ok: false, errorClass: 'deadline-exceeded', responseStarted: false, error, released, unsent: true });
  }

  /** The client closed its side: an unfinished answer stops the upstream request, unless its body is read on for a tap that keeps it. */
  clientClosed(): void {
    // Not `writableFinished`: node:http2's response reads finished once its stream has closed, a reset included.
    if (!this.response.writableEnded && !(this.tapped && readsOnWithoutClient(this.sink))) this.controller?.abort(new ClientGoneError());
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The call's deadline passed, or the client left, while the request waited for a connection:
    // undici drops a request whose handler throws here, before writing any of it, and keeps the
    // connection for the next (an abort would close it); the error comes back to `onResponseError`.
    if (this.unsent || this.response.destroyed) {
      this.dropped = true;
      throw this.unsent ?? new ClientGoneError();
    }
    this.started = performance.now();
    this.startDeadline(this.timeouts.headersTimeoutMs);
    // A closure only for a request with a body still coming (a retry never has one: proxy-attempts.ts).
    const body = this.body;
    if (body !== null && !body.readableEnded) body.once('end', () => this.requestSent());
  }

  /** The request body has been read to its end: the wait for the response headers starts over (unless they came already). */
  private requestSent(): void {
    if (this.phase === WAITING) this.startDeadline(this.timeouts.headersTimeoutMs);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: IncomingHttpHeaders): void {
    // An informational answer (103 Early Hints, 102) is not the response: it is not passed on, as
    // nginx does, and the headers timeout keeps running. (undici fails an attempt on a 100, or on a
    // 101 it did not ask for, itself.)
    if (statusCode < 200) return;
    if (!isValidFinalStatus(statusCode)) return controller.abort(new InvalidStatusError(statusCode));
    const context = this.context;
    this.startDeadline(this.timeouts.bodyTimeoutMs);
    this.status = statusCode;
    this.headCame();
    context.outcome.status = statusCode;
    // Over HTTP/1.1 a gRPC call is gRPC-Web, its status in these headers or in the body's last frame.
    if (isGrpcRequest(context.request.headers)) {
      this.grpcWeb = readGrpcStatus(context, upstreamHeaders);
      this.grpcStatus = context.outcome.grpcStatus;
    }
    let outgoing = responseHeadersForClient(upstreamHeaders);
    const headOnly = endsWithHead(statusCode, upstreamHeaders);
    // RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204. nghttp2 (curl, an HTTP/2
    // client) resets the stream for one not 0, undici (fetch) fails it; nginx drops it over HTTP/2.
    if (headOnly && statusCode === 204) delete outgoing['content-length'];
    // An answer of the gateway's own in this one's place (the `cache`'s stored one, for a 304 to its revalidation or a 5xx).
    const replacement = context.answerReplacer?.(statusCode, outgoing);
    if (replacement !== undefined) {
      outgoing = replacement.headers;
      context.outcome.status = replacement.outcomeStatus ?? replacement.status;
      context.outcome.upstreamStatus = statusCode;
    }
    this.outgoing = outgoing;
    try {
      applyHeaderHooks(context, replacement?.status ?? statusCode, outgoing);
    } catch (error) {
      // Nothing went to the client yet: the proxy answers 500 (`internal`), the upstream not blamed.
      return controller.abort(error as Error);
    }
    // From here the client may have part of the answer (undici calls nothing after an attempt ended; the phase only moves forward all the same).
    if (this.phase === WAITING) this.phase = ANSWERING;
    let streamed: Writable | undefined;
    try {
      if (replacement !== undefined) {
        this.sink = sendReplacement(context, replacement.status, outgoing, replacement.body);
        this.draining = true;
      } else if (context.responseBodyTransforms.length > 0) {
        this.buffered = [];
      } else {
        streamed = this.sink = startResponseBody(context, statusCode, outgoing);
        this.draining = streamed instanceof ErrorPageDrain;
      }
    } catch (error) {
      return this.headRefused(controller, error);
    }
    if (streamed !== undefined) {
      if (this.response.destroyed) return controller.abort(new ClientGoneError());
      // Only a tap's body makes the callback: the attempts of routes without a cache allocate none.
      if (tapsBody(streamed)) this.tapped = whenBodyUnwanted(streamed, () => this.leaveBody(controller));
    }
    if (headOnly) this.endWithHead(controller);
  }

  /** The response's head came (`status` set): the end of the latency sample, reported to the pick now (`sampleHead`), not at the body's end. */
  protected headCame(): void {
    this.answeredAt = performance.now();
    sampleHead(this.pick, this.status, this.answeredAt - this.started);
  }

  /**
   * The client's response refused the answer's head (`AnswerHeadError`): the gateway's failure,
   * never the upstream's. With nothing of it sent, the proxy answers 500 `internal` in its place.
   */
  private headRefused(controller: Dispatcher.DispatchController, error: unknown): void {
    if (!this.response.headersSent) this.headUnsent = true;
    forgetRefusedHead(this.response, this.outgoing);
    controller.abort(new AnswerHeadError(error));
  }

  /**
   * A 204 or 304 whose `Content-Length` is not 0 is whole with its head (RFC 9110 §8.6: a 304 may
   * announce the length a 200 would have had; no body follows either). undici fails it once the
   * head is parsed (`ResponseContentLengthMismatchError`), which would cut the client's answer and
   * count a reset against an upstream that did nothing wrong: it is ended here and answered, as
   * nginx relays it, and the connection closed, as undici would have (a 204 may have sent a body).
   */
  private endWithHead(controller: Dispatcher.DispatchController): void {
    this.onResponseEnd(controller, {});
    controller.abort(new Error('a 204 or 304 announced a body length'));
  }

  /**
   * The client's answer is done and nobody wants the rest of the body (`whenBodyUnwanted`): the
   * attempt is answered (the upstream did nothing wrong), and the connection closed unread.
   */
  private leaveBody(controller: Dispatcher.DispatchController): void {
    // The body came to its end first: its connection is undici's again.
    if (this.phase >= SETTLED) return;
    this.finish(ANSWERED);
    // undici then destroys the socket and reports the error to `onResponseError`, the attempt reported already.
    controller.abort(new Error('the rest of the answer is wanted by nobody'));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.draining) this.extendDeadline();
    this.grpcWeb?.push(chunk);
    if (this.buffered) {
      this.buffered.push(chunk);
      return;
    }
    // Both client response kinds (HTTP/1.1 and HTTP/2), and an encoder, are writable streams with back-pressure.
    const sink = this.sink!;
    countBodyBytes(this.context, sink, chunk.length);
    // A tap's pass-through may leave the body from inside this write (`whenBodyUnwanted`): the attempt is then over.
    if (!sink.write(chunk) && this.phase < SETTLED) {
      // A slow client is not the upstream's silence: the body timeout waits for it.
      this.stopDeadline();
      const hold = (this.hold ??= new ClientHold());
      hold.begin(performance.now());
      controller.pause();
      sink.once('drain', () => {
        hold.end(performance.now());
        if (this.phase < SETTLED) this.startDeadline(this.timeouts.bodyTimeoutMs);
        // Not from here: Node's server also emits 'drain' on this response from inside another
        // response's write, the answer pipelined behind it (_http_server's updateOutgoingData calls
        // socketOnDrain), and that write runs inside undici's parser for that other answer. Resuming
        // this parser there re-enters llhttp: undici asserts `currentParser === null`, the assertion
        // fails that other answer, and this one stays paused for good (its 'drain' already spent).
        process.nextTick(resumeController, controller);
      });
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.ended = true;
    this.stopDeadline();
    const grpcWebStatus = this.grpcWeb?.status;
    if (grpcWebStatus !== undefined) this.grpcStatus = this.context.outcome.grpcStatus = grpcWebStatus;
    if (!this.buffered) {
      // A chunked answer's trailers go on as an HTTP/2 instance's do (not behind an answer in its
      // place: an error page, a stale copy): an HTTP/2 client gets them in
      // a trailing HEADERS frame, an HTTP/1.1 one after the last chunk.
      if (!this.draining && hasFields(trailers)) this.response.addTrailers(withoutHopByHop(trailers) as Record<string, string>);
      this.sink!.end();
      this.finish(ANSWERED);
      return;
    }
    void sendTransformed(this.context, this.status, this.outgoing!, this.buffered).then((result) => this.finish(result));
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    // The response ended (`endWithHead`); its answer may still be on its way through a transform.
    if (this.ended) return;
    // The client's request body failed (it left) before the request started: undici kept that
    // error and aborts with it once a connection is there. The client's doing, not a reset.
    if (this.controller === undefined && this.body !== null && error === this.body.errored) {
      this.dropped = true;
      // A body refused as it streams keeps its class: the client is answered 413 (past the limit) or
      // 400 (not decodable), not 499.
      return this.fail(this.unsent ?? (error instanceof BodyRefusedError ? error : new ClientGoneError()));
    }
    this.fail(error);
  }

  fail(error: Error): void {
    const responseStarted = this.phase === ANSWERING && !this.headUnsent;
    const upstreamClass = classifyUpstreamError(error, responseStarted);
    // The upstream closed an answer its client had stopped reading (its send timeout): the client's doing.
    const errorClass = this.hold === undefined ? upstreamClass : this.hold.classOf(upstreamClass, performance.now(), error);
    // undici never started the request (`onRequestStart`, where it writes it, did not run) and the
    // failure is not the instance's (undici refused the request's headers, the gateway closed its
    // pool while the request was queued): nothing of it left the gateway. A connect failure stays
    // the instance's failed attempt.
    if (this.dropped || (this.controller === undefined && !countsAgainstUpstream(errorClass))) this.finish({ ok: false, errorClass, responseStarted: false, error, unsent: true });
    else this.finish({ ok: false, errorClass, responseStarted, error });
  }

  protected deadlinePassed(): void {
    // The upstream is waiting for the client's upload, not the other way round.
    const responseStarted = this.phase === ANSWERING;
    if (!responseStarted && uploadWaitsForClient(this.body)) {
      this.startDeadline(this.timeouts.headersTimeoutMs);
      return;
    }
    const error = responseStarted
      ? new UpstreamTimeoutError('SB_UPSTREAM_BODY_TIMEOUT', `no response data for ${this.timeouts.bodyTimeoutMs} ms`)
      : new UpstreamTimeoutError('SB_UPSTREAM_HEADERS_TIMEOUT', `no response headers within ${this.timeouts.headersTimeoutMs} ms`);
    // undici then destroys the socket and reports the error to `onResponseError`.
    this.controller?.abort(error);
  }

  /** Reports the outcome to the pick and, unless `settle` did already, the result to the receiver; once. */
  protected finish(result: AttemptResult): void {
    if (this.phase === REPORTED) return;
    const settled = this.phase === SETTLED;
    this.phase = REPORTED;
    // A body read on for a tap alone has nobody else to tell that it broke off.
    if (!result.ok && this.tapped) stopTap(this.sink);
    try {
      // Dropped unsent once its deadline had passed in undici's queue (every connection busy) or while
      // its connection opened: the instance saw nothing, so its pick is released unused, as the HTTP/2
      // stream queue does (deadline-exceeded with the time waited was a latency sample for p2c-ewma). A
      // connection that failed meanwhile comes here with its own error, the instance's fault.
      if (!result.ok && this.unsent !== undefined && result.error === this.unsent) this.pick.done(NEVER_SENT);
      else reportAttempt(this.pick, this.started, this.answeredAt, this.status, result, this.grpcStatus, this.context.outcome);
    } finally {
      // The held slot is given back even if reporting failed.
      this.letGo?.();
    }
    if (!settled) this.handOver(result);
  }

  /** Hands the result to the receiver before the pick is told (`SETTLED`). */
  private settle(result: AttemptResult): void {
    if (this.phase >= SETTLED) return;
    this.phase = SETTLED;
    this.handOver(result);
  }

  /** Hands the result to the receiver, having stopped the timers and the client's 'close' listener; called once, by `settle` or `finish`. */
  private handOver(result: AttemptResult): void {
    this.stopDeadline();
    clearTimeout(this.callDeadline);
    if (this.ownListener) {
      this.response.off('close', abortOnClientClose);
      (this.response as WatchedResponse)[CLOSE_WATCHER] = undefined;
    } else {
      (this.response as WatchedResponse)[CLOSE_WATCHER] = null;
    }
    this.receiver.attemptEnded(result);
  }
}

/** Whether a response is whole with its head though it announces a length (see `Http1Attempt.endWithHead`). */
function endsWithHead(statusCode: number, headers: IncomingHttpHeaders): boolean {
  if (statusCode !== 204 && statusCode !== 304) return false;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/** True when undici handed over trailers with at least one field (it passes an empty object, or none, for an answer without). */
function hasFields(trailers: IncomingHttpHeaders | undefined): trailers is IncomingHttpHeaders {
  if (trailers === undefined || trailers === null) return false;
  for (const _ in trailers) return true;
  return false;
}
