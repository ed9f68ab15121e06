import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Transform } from 'node:stream';
import type { Logger } from '../src/logger.ts';
import type { RouteConfig } from './config/types.ts';
import type { RequestTrace } from './telemetry/tracing/index.ts';

/** How the gateway ended a request: the status the client saw and, for upstream failures, the error class. */
export interface RequestOutcome {
  status: number;
  /** Set when the gateway answered instead of an upstream (no route, no instance, upstream error…). */
  errorClass?: string;
  /** `host:port` of the last upstream tried. */
  upstream?: string;
  /** The last attempt's request never reached `upstream` (its transport dropped it unsent, `AttemptResult.unsent`, or the call's deadline was spent before it went out): the request's bytes are none of that instance's. */
  unsent?: boolean;
  /** Upstream attempts made (1 + retries). */
  attempts: number;
  /**
   * The refusals the request may have caused (`isRequestRefusal`) that an attempt of it met and
   * counted against its instance, by class: a later attempt's refusal of a class listed here is
   * counted against none (`blameClassOf`), one of another class is the instance's. Set by the proxy;
   * undefined until then.
   */
  refusalsBlamed?: readonly string[];
  /** Response body bytes sent to the client. */
  bytesOut: number;
  /** gRPC calls only: the `grpc-status` the caller saw (the upstream's trailer, or the gateway's own). */
  grpcStatus?: number;
  /**
   * A gRPC-Web call sent as it came (no `grpcWeb` middleware) got a plain gRPC Trailers-Only failure
   * (`answersGrpcWebWithGrpc`): a server's refusal of a call it cannot read, or its own failure of
   * one it read, which look alike; the attempt counts as `grpc-web-unsupported`, against none. Holds
   * the answer's `grpc-message`, as it came, for the warning (`warnGrpcWebUnsupported`).
   */
  grpcWebUnsupported?: { readonly grpcMessage: string };
  /** What a `cache` middleware did with the request (HIT, MISS, EXPIRED, REVALIDATED, STALE, BYPASS); undefined when none looked it up. */
  cacheStatus?: string;
  /** The status the upstream answered when an answer of the gateway's own went in its place (`AnswerReplacer`): the attempt is judged by it, not by `status`. */
  upstreamStatus?: number;
}

/**
 * Rewrites an answer's headers before they reach the client: the upstream's, and the gateway's own
 * (errors, refusals, fallbacks); runs in registration order. `context` is the request's own, so a
 * hook can be one function shared by every request.
 */
export type ResponseHeadersHook = (status: number, headers: OutgoingHttpHeaders, context: GatewayContext) => void;

/**
 * Transforms a whole (decoded) upstream response body. Registering one makes the proxy buffer the
 * body; `content-encoding: gzip` bodies are decoded before and encoded after the transforms.
 */
export type ResponseBodyTransform = (body: Buffer, headers: OutgoingHttpHeaders) => Buffer | Promise<Buffer>;

/**
 * Chooses how an upstream answer's body is encoded for the client, as its headers are about to be
 * written: returns the streaming encoder the body goes through (having edited `headers` in place:
 * Content-Encoding, Content-Length…), or undefined to send the body as it is. Set by `compress`.
 */
export type ResponseEncoder = (status: number, headers: OutgoingHttpHeaders, context: GatewayContext) => Transform | undefined;

/** A page that replaces an error answer's body (`errors`): its bytes and their Content-Type. */
export interface ErrorPage {
  readonly body: Buffer;
  readonly contentType: string;
}

/** The page for an answer of `status`, or undefined to leave that answer's body as it is. Set by `errors`. */
export type ErrorPageLookup = (status: number) => ErrorPage | undefined;
/**
 * Watches one upstream answer's body on its way to the client, as the proxy writes it (before any
 * encoder): `chunk` for each piece, then `end` once the whole body was handed on (before the
 * response ends), or `abort` when it was not (the upstream broke off, the client went away first).
 * Exactly one of `end` and `abort` is called.
 * Set by `cache`.
 */
export interface ResponseBodyTap {
  chunk(chunk: Buffer): void;
  end(): void;
  abort(): void;
  /**
   * Only these bytes of the body go to the client, with this status (the tapper made the headers
   * theirs), while the tap still sees every chunk: a `cache` filling its entry from a miss with
   * `Range` (nginx's range filter on a cacheable fetch), with the client's own validators, which the
   * answer meets (a 304, nginx's not_modified filter), or from a HEAD fetched as a GET (`convertHead`).
   * The response ends once the part is sent; the rest of the upstream body is read on for the tap
   * while it keeps it (`keeping`), else left unread.
   */
  readonly part?: ClientPart | undefined;
  /** False once nothing more of the body will be kept (the tapper gave up on it: past its bound); true when absent. While true, a body whose client's answer is done (it left, or its part was sent) is read on for the tap alone. */
  keeping?(): boolean;
  /**
   * Takes the function to call when `keeping` turns false between chunks (a background update cut
   * past its bound while its upstream is silent): the body read on for the tap alone is then left
   * unread at once, not when a next chunk comes, which a silent upstream never sends. Called once, as the body starts.
   */
  onUnkept?(unkept: () => void): void;
}

/**
 * The bytes of an upstream body `length` bytes long (infinite when not known) that go to the client
 * (`ResponseBodyTap.part`): from `start` up to `end`, excluded, answered with `status` (206, or 416
 * or 304 with none; a HEAD's own, with none, `convertHead`).
 */
export interface ClientPart {
  readonly status: number;
  readonly start: number;
  readonly end: number;
  readonly length: number;
}

/**
 * Chooses whether to watch an upstream answer's body (`ResponseBodyTap`), as its headers are about
 * to be written (after the response header hooks); undefined to leave it unwatched. Set by `cache`.
 */
export type ResponseTapper = (status: number, headers: OutgoingHttpHeaders, context: GatewayContext) => ResponseBodyTap | undefined;

/** An answer held whole in memory (a stored one, `cache`) that goes to the client in an upstream answer's place (`AnswerReplacer`). */
export interface HeldAnswer {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  /**
   * The status the request's outcome records (metrics, the access log) when not `status`: a
   * gRPC-Web answer (HTTP 200, its `grpc-status` in the headers) in place of an upstream's answer
   * that is not gRPC keeps the upstream's, as the gateway's own gRPC answers keep the HTTP status they stand for.
   */
  readonly outcomeStatus?: number;
}

/**
 * Looks at an upstream answer's status and headers (hop-by-hop ones removed) before the response
 * header hooks do, and returns the answer to send in its place (its headers an object of its own,
 * which the hooks edit), or undefined to send it as it is. Also asked, with `errorClass`, the
 * status of the gateway's own answer and empty headers, before the gateway answers in the
 * upstream's place (`sendErrorAnswer`: no instance reached, a timeout, an open breaker).
 * A returned answer goes through the hooks, the encoder and the error pages as the upstream's
 * would, whole; the upstream's own body is read and dropped, and the attempt's outcome (passive
 * health, the breaker, metrics) stays the upstream's status or failure (`RequestOutcome.upstreamStatus`).
 * Set by `cache` (a 304 to its own revalidation; a stale answer in place of a failure) and by
 * `grpcWeb` (a gRPC-Web status in place of an answer that is not gRPC).
 */
export type AnswerReplacer = (status: number, headers: OutgoingHttpHeaders, errorClass?: string) => HeldAnswer | undefined;

/**
 * A gRPC-Web call the `grpcWeb` middleware sends to the instance as gRPC (Envoy's
 * `envoy.filters.http.grpc_web`): its answer goes back to the client as gRPC-Web.
 */
export interface GrpcWebTranslation {
  /**
   * Called as an upstream answer's body starts (`startResponseBody`): the encoder the body goes
   * through when the answer is gRPC (its head translated by the middleware's header hook), which
   * also takes its trailers (`takeTrailers`); undefined for any other answer, sent as it is.
   */
  startBody(): Transform | undefined;
  /** Takes the upstream's trailers into the translated body (a trailer frame at its end); false when the body is not translated, and they go as HTTP trailers. */
  takeTrailers(trailers: OutgoingHttpHeaders): boolean;
  /**
   * Ends a translated answer under way with the gateway's own status (`endGrpcCall`): `ended`;
   * `cut` when its body stopped within a message, where no trailer frame could follow (the caller
   * destroys the response); `untranslated` when no translated body was started.
   */
  endWithStatus(grpcStatus: number, message: string): 'ended' | 'cut' | 'untranslated';
}

/** A client's request: HTTP/1.1, or HTTP/2 through Node's compatibility API (`:authority` already copied to `host`). */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/** The answer to a client: HTTP/1.1, or HTTP/2 through Node's compatibility API (connection-specific headers are dropped). */
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** Told once when the client's response closes (the client went away, or the answer ended). */
export interface CloseWatcher {
  clientClosed(): void;
}

/**
 * Where a response holds its `CloseWatcher`, so one 'close' listener per response serves the
 * listener and the upstream attempt: `null` means the response's own 'close' listener (the
 * HTTP/1.1 listener's) already calls the watcher put here; absent means nothing does, and an
 * attempt must listen itself (HTTP/2 responses). A second listener on a response would turn its
 * listener slot into an array, allocated and spliced per request.
 */
export const CLOSE_WATCHER = Symbol('switchboard.closeWatcher');

/** The answer a listener wrote itself in a dispatched request's place (on its HTTP/1.1 connection, or on its HTTP/2 stream). */
export interface ListenerAnswer {
  readonly status: number;
  /** Its `error` code (`bad-request`, `request-timeout`). */
  readonly error: string;
  /** Bytes of its JSON body. */
  readonly bytes: number;
}

/**
 * Where a dispatched request's response holds the answer its listener gave in its place (the
 * request's body failed to parse, or came too slowly): read only once the response is destroyed,
 * by whoever records the request's outcome, so a request on its own path pays nothing for it.
 */
export const LISTENER_ANSWER = Symbol('switchboard.listenerAnswer');

/** A response whose listener may have answered in its place. */
export type AnsweredResponse = { [LISTENER_ANSWER]?: ListenerAnswer };

/**
 * Set on an HTTP/1.1 response whose connection broke while it waited its turn behind an earlier
 * pipelined answer: nothing written into it reached the client, whatever its head and bytes say.
 * Also on the response made for an upgrade whose connection broke so (data-plane.ts): its request
 * runs no layer. Read only once the response is destroyed, as `LISTENER_ANSWER` is.
 */
export const QUEUED_WHEN_CLOSED = Symbol('switchboard.queuedWhenClosed');

/** A response that may have been closed while queued. */
export type QueuedResponse = { [QUEUED_WHEN_CLOSED]?: true };

/**
 * Calls `done(value)` once `response` is finished with: at once when its end() was called or it was
 * destroyed, else when it closes (an answer still streaming, an upgrade's tunnel). What counts a
 * request until its answer is whole (the access log, metrics, an in-flight count) waits through this;
 * `value` is passed on so a caller's `done` can be one function for every request, not a closure each.
 */
export function afterResponse<T>(response: ClientResponse, done: (value: T) => void, value: T): void {
  if (response.writableEnded || response.destroyed) done(value);
  else response.once('close', () => done(value));
}

/** A response as the shared 'close' listener sees it. */
export type WatchedResponse = { [CLOSE_WATCHER]?: CloseWatcher | null };

/**
 * Values middleware pass to later middleware through `context.set` / `context.get` (Hono's context
 * variables), typed by declaration merging: a middleware that publishes a value declares its key,
 * e.g. `declare module '../../context.ts' { interface ContextVariables { tenant: string } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface ContextVariables {}

/**
 * One request's state as it passes through the middleware onion. Middleware read the client side
 * (`request`), edit the `upstream` side (path, headers), and register response hooks; the proxy at the
 * centre sends `upstream` to a picked instance and streams the answer to `response`.
 */
export interface GatewayContext {
  readonly request: ClientRequest;
  readonly response: ClientResponse;
  /** Name of the entry point the request came in on (`web` for the old `listen:`). */
  readonly entryPoint: string;
  /** True when the client connection is TLS (an `https` entry point). */
  readonly secure: boolean;
  /** From `X-Request-Id` when the client sent a sane one, else generated. */
  requestId: string;
  /** The client address after trusted `X-Forwarded-For` handling. */
  clientIp: string;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  /** The service the matched route sends to. */
  service: string;
  /** Name of the matched route, for logs and metrics. */
  routeName: string;
  /** The matched route; undefined until routing matched one. */
  route?: RouteConfig;
  /** What will be sent upstream; middleware edit it in place. */
  readonly upstream: {
    method: string;
    /** Path and query. */
    path: string;
    headers: IncomingHttpHeaders;
    /** Host header to send; undefined passes the client's Host through. */
    host?: string;
    /**
     * When true the proxy sends the picked instance's `host:port` as Host (route `hostHeader:
     * upstream`), overriding `host`; only the proxy knows the instance, so middleware cannot set it.
     */
    useInstanceHost?: boolean;
  };
  /**
   * Whether the client's headers, as first copied for upstream, hold a name with `_` the gateway
   * kept (no other spelling of a header it states): when false, a middleware removing other
   * spellings of its own headers (`otherSpellingsRemover`) need not scan them. Undefined: not known.
   */
  readonly underscoreNames?: boolean;
  readonly responseHeaderHooks: ResponseHeadersHook[];
  readonly responseBodyTransforms: ResponseBodyTransform[];
  /** Encodes the upstream answer's body on its way to the client (`compress`); undefined sends it as it is. */
  responseEncoder: ResponseEncoder | undefined;
  /** The error pages of the `errors` middleware around the inner layers (read by `errorPageFor`); undefined replaces no answer's body. */
  errorPage?: ErrorPageLookup | undefined;
  /** Watches the upstream answer's body as it streams to the client (`cache`); undefined: nothing watches. */
  responseTapper?: ResponseTapper | undefined;
  /** Puts an answer of its own in an upstream answer's place before any of it reaches the client (`cache`); undefined: none. */
  answerReplacer?: AnswerReplacer | undefined;
  /**
   * The `cache` the request passed (the innermost, when an entry point's and a route's both have one),
   * run where the proxy would be (`servingCachedHits`), after every other layer of the chain: an
   * access control listed after the cache still refuses a request a stored answer exists for; undefined: none.
   */
  cacheAtProxy?: CacheAtProxy | undefined;
  /** Set by `grpcWeb` on a gRPC-Web call it sends upstream as gRPC; undefined for every other request. */
  grpcWeb?: GrpcWebTranslation | undefined;
  /** Filled in by the proxy (or whoever answers) as the request ends. */
  outcome: RequestOutcome;
  /** The request's trace when tracing is on; the proxy adds a span per upstream attempt. */
  trace?: RequestTrace | undefined;
  /** Logger bound to this request's id, created on first use (most requests never log). */
  readonly log: Logger;
  /** Stores a context variable for the middleware that run after (and around) this one; replaces an earlier value. */
  set<Key extends keyof ContextVariables>(key: Key, value: ContextVariables[Key]): void;
  /** A context variable set earlier on this request, or undefined. */
  get<Key extends keyof ContextVariables>(key: Key): ContextVariables[Key] | undefined;
}

/**
 * A `cache`'s work where the proxy would run (`GatewayContext.cacheAtProxy`): `proxy` sends a
 * context upstream, the request's own or one of the cache's (a background update, which has no client).
 */
export type CacheAtProxy = (context: GatewayContext, proxy: (context: GatewayContext) => Promise<void>) => Promise<void>;

/** A middleware: do work, `await next()` to run the inner layers, then do more work (Koa/Hono onion). */
export type Middleware = (context: GatewayContext, next: () => Promise<void>) => Promise<void>;
