import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import type { ClientResponse, ContextVariables, GatewayContext, HeldAnswer, ResponseBodyTap } from '../../context.ts';
import { askRevalidation } from './cache-policy.ts';
import type { CachedAnswer } from './cache-store.ts';

/**
 * The client's headers a background fetch leaves out: the client's own conditionals and `Range`
 * (the fetch asks for the whole answer, with the cache's validators), and a body's framing (it sends none).
 */
const CLIENT_ONLY_HEADERS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'range', 'if-range', 'content-length', 'transfer-encoding', 'expect'] as const;

/** `headers` without those a background fetch leaves out (`CLIENT_ONLY_HEADERS`): a copy. */
function withoutClientOnlyHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy = { ...headers };
  for (const name of CLIENT_ONLY_HEADERS) delete copy[name];
  return copy;
}

/**
 * The response of a fetch that has no client (a background update): it takes the head and every
 * byte of the body and drops them, at once (no back-pressure: the stored copy is gathered by the
 * tap before it, `TapPassing`, and bounded there). Only the members the proxy, the transports and
 * the gateway's own answers use on a response; it never closes before the proxy ends or destroys
 * it, so an attempt never hears of a client gone.
 */
class NoClientResponse extends Writable {
  statusCode = 200;
  headersSent = false;
  sendDate = false;
  /** No connection: the gateway's answers then read no socket (`closingUnreadBody`). */
  readonly socket = null;

  writeHead(status: number): this {
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }

  setHeader(): this {
    return this;
  }

  getHeader(): undefined {
    return undefined;
  }

  addTrailers(): void {}

  override _write(_chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.headersSent = true;
    done();
  }

  /**
   * Closes without an 'error', as a client's response does: the proxy cuts a response whose
   * upstream failed mid-body with `destroy(error)`, and the 'error' a Writable would emit then has
   * no listener here (no client, no server around it) and would be thrown, the gateway's process with it.
   */
  override _destroy(_error: Error | null, done: (error?: Error | null) => void): void {
    done();
  }
}

/**
 * A context of its own for a fetch that updates a stored answer without a client (nginx's
 * `proxy_cache_background_update` subrequest), made from the client's `client` as it reached the
 * proxy: the same route, service, upstream path and headers (without the client's conditionals,
 * `Range` and body framing), sent upstream as a `GET` (a HEAD's fetch is the GET's, as `convertHead`), with
 * the client's body transforms (a stored answer is the transformed one, as on a miss) and none of
 * its response header hooks, encoder or error pages: those shape the client's answer, which went
 * already, and run again on every hit. Its `outcome` is its own, never the client's access line;
 * its attempts count against the upstream as any do (the proxy's observer, health, breaker).
 */
function backgroundContext(client: GatewayContext): GatewayContext {
  const headers = withoutClientOnlyHeaders(client.upstream.headers);
  // No body, no connection: the attempt loop reads neither (`announcesBody`, `closingUnreadBody`).
  // The client's method, though the fetch is a GET: a route's mirror copies what the client asked
  // (a HEAD as a HEAD, as it copies a HEAD the cache fetches as a GET), once, as it copied the
  // request that updated without `backgroundUpdate`; the client's stale answer went to no mirror.
  const request = { method: client.request.method, url: client.request.url, headers: withoutClientOnlyHeaders(client.request.headers), socket: null, complete: true, httpVersionMajor: 1, httpVersionMinor: 1 };
  return {
    request: request as unknown as IncomingMessage,
    response: new NoClientResponse() as unknown as ClientResponse,
    entryPoint: client.entryPoint,
    secure: client.secure,
    requestId: client.requestId,
    clientIp: client.clientIp,
    startedAt: performance.now(),
    service: client.service,
    routeName: client.routeName,
    route: client.route,
    upstream: { method: 'GET', path: client.upstream.path, headers, host: client.upstream.host, useInstanceHost: client.upstream.useInstanceHost },
    underscoreNames: client.underscoreNames,
    responseHeaderHooks: [],
    responseBodyTransforms: [...client.responseBodyTransforms],
    responseEncoder: undefined,
    errorPage: undefined,
    responseTapper: undefined,
    answerReplacer: undefined,
    cacheAtProxy: undefined,
    outcome: { status: 0, errorClass: undefined, upstream: undefined, attempts: 0, bytesOut: 0, cacheStatus: undefined, upstreamStatus: undefined },
    trace: undefined,
    log: client.log,
    set: <Key extends keyof ContextVariables>(key: Key, value: ContextVariables[Key]) => client.set(key, value),
    get: <Key extends keyof ContextVariables>(key: Key) => client.get(key),
  };
}

/**
 * The tap of a background fetch's answer (`tap`, or none when nothing of it will be stored) as one
 * whose client takes an empty part: no client wants any of the body, so it is read on for the tap
 * alone while the tap keeps it (`TapPassing`), and left unread, the attempt judged by the upstream's
 * status, once nothing of it will be stored (past `maxEntrySize`, `no-store`, a status not kept) or
 * the fetch was `cut` (its bound passed). Else a large body nobody stores would be downloaded whole
 * for nobody, its mark gone meanwhile, and every next stale request would start one more such download.
 */
function forTheTapAlone(tap: ResponseBodyTap | undefined, status: number, cut: { readonly done: boolean; unkept?: () => void }): ResponseBodyTap {
  const part = { status, start: 0, end: 0, length: Number.POSITIVE_INFINITY };
  if (tap === undefined) return { part, chunk: () => undefined, end: () => undefined, abort: () => undefined, keeping: () => false };
  return {
    part,
    chunk: (chunk) => tap.chunk(chunk),
    end: () => tap.end(),
    abort: () => tap.abort(),
    keeping: () => !cut.done && tap.keeping?.() !== false,
    onUnkept: (unkept) => (cut.unkept = unkept),
  };
}

/** What a background update needs of the cache it updates (index.ts): its marks and how it stores. */
export interface BackgroundUpdateParts {
  /** The updating marks: the context updating each stale stored answer. */
  readonly updaters: Map<CachedAnswer, GatewayContext>;
  /** The contexts whose taps gather an answer: their marks go when the tap ends. */
  readonly gatherers: WeakSet<GatewayContext>;
  /** Gathers an answer beside its way and stores it once whole, if it may be stored (letting the mark go either way). */
  tapFor(context: GatewayContext, primary: string, sent: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, drops: number, updated: CachedAnswer | undefined): ResponseBodyTap | undefined;
  /** The stored answer a 304 to its revalidation stands for, freshened and stored again. */
  refreshed(context: GatewayContext, primary: string, sent: IncomingHttpHeaders, found: CachedAnswer, notModified: OutgoingHttpHeaders, drops: number): HeldAnswer;
  /** The fetch of `context` has stored its answer or will store none: its marks go. */
  fetchEnded(context: GatewayContext, updated: CachedAnswer | undefined): void;
  /** The longest a fetch holds its mark (`backgroundUpdate.timeout`): past it, it is cut and stores nothing. */
  readonly timeoutMs: number;
}

/**
 * Updates the stale stored answer `found` of a request (`client`, answered already from it) with
 * a fetch of its own, as nginx's background subrequest does: revalidating with the stored
 * validators (a 304 freshens it, as REVALIDATED does) or storing the new answer, whole, as a GET
 * without the client's conditionals or `Range`. It runs the proxy alone for a context without a
 * client (`backgroundContext`), rather than the client's own request read on past its answer (as a
 * `headTap` reads on): the client's response ends with the stale answer, so its keep-alive
 * connection is free for its next request and its access line is written then, with nothing to
 * keep the proxy from aborting on that response's close; no layer of the chain (header hooks,
 * compress, error pages) runs again for an answer no client sees, and the route's mirror, part of
 * `proxy`, copies it once, as it copied the request that updated before. The proxy's own rules
 * (retries, timeouts, the breaker, health, metrics) judge the fetch as any attempt. It holds the
 * updating mark until it stored or will store nothing, so the others get UPDATING meanwhile, and
 * the next stale request after a failure tries again. No client leaves to end a fetch that hangs
 * (an upstream that never answers, on a service without a headers or body timeout), so it is cut
 * once it ran `timeoutMs` (nginx's background subrequest has its `proxy_read_timeout`): its
 * "client" closes, as a client's that leaves, so the attempt ends blaming no one (`cancelled`),
 * and the mark goes at once for the next stale request to start a new fetch. Nothing waits for it
 * at shutdown: the pools' grace bounds it, then cuts it, and a cut answer is never stored.
 */
export function updateInBackground(parts: BackgroundUpdateParts, client: GatewayContext, primary: string, found: CachedAnswer, clientSent: IncomingHttpHeaders, drops: number, proxy: (context: GatewayContext) => Promise<void>): void {
  const { updaters, gatherers } = parts;
  const context = backgroundContext(client);
  const sent = withoutClientOnlyHeaders(clientSent);
  updaters.set(found, context);
  const revalidating = askRevalidation(context, found, sent);
  let revalidated = false;
  /** Set once the fetch ran past its bound; `unkept` leaves the rest of a body being read on for the tap unread. */
  const cut: { done: boolean; unkept?: () => void } = { done: false };
  let tap: ResponseBodyTap | undefined;
  let upstream: { status: number; headers: OutgoingHttpHeaders } | undefined;
  context.responseHeaderHooks.push((answerStatus, headers) => {
    upstream ??= { status: answerStatus, headers: { ...headers } };
  });
  context.answerReplacer = (answerStatus, headers, errorClass) => {
    if (cut.done || !revalidating || answerStatus !== 304 || errorClass !== undefined) return undefined;
    revalidated = true;
    return parts.refreshed(context, primary, sent, found, headers, drops);
  };
  context.responseTapper = (answerStatus, _headers, tapped) => {
    if (cut.done || revalidated || upstream === undefined || upstream.status !== answerStatus) {
      parts.fetchEnded(context, found);
      return undefined;
    }
    tap = parts.tapFor(tapped, primary, sent, answerStatus, upstream.headers, drops, found);
    return forTheTapAlone(tap, answerStatus, cut);
  };
  const bound = setTimeout(() => {
    // Stored or given up on already: nothing to cut.
    if (updaters.get(found) !== context) return;
    cut.done = true;
    context.log.warn({ service: context.service, path: context.upstream.path, timeoutMs: parts.timeoutMs }, 'a background update of a cached answer ran past backgroundUpdate.timeout: cut, nothing stored');
    // The copy gathered so far is dropped and the marks go now, not when the attempt has ended.
    tap?.abort();
    parts.fetchEnded(context, found);
    // Its head came: the body, read on for the tap alone, is left unread (the attempt then ends); else its "client" leaves.
    if (cut.unkept !== undefined) cut.unkept();
    else (context.response as unknown as Writable).destroy();
  }, parts.timeoutMs);
  bound.unref();
  // A fetch that failed (no answer to tap, the gateway's own error in its place) lets the mark go as it ends; one still gathering, as its tap ends.
  const ended = () => {
    if (updaters.get(found) === context && !gatherers.has(context)) updaters.delete(found);
    // Still gathering: the bound stays for the body read on for the tap alone.
    if (updaters.get(found) !== context) clearTimeout(bound);
  };
  proxy(context).then(ended, (error: unknown) => {
    context.log.error({ err: error instanceof Error ? error.message : String(error) }, 'a background update of a cached answer failed');
    ended();
  });
}
