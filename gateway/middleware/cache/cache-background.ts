import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import type { ClientResponse, ContextVariables, GatewayContext } from '../../context.ts';

/**
 * The client's headers a background fetch leaves out: the client's own conditionals and `Range`
 * (the fetch asks for the whole answer, with the cache's validators), and a body's framing (it sends none).
 */
const CLIENT_ONLY_HEADERS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'range', 'if-range', 'content-length', 'transfer-encoding', 'expect'] as const;

/** `headers` without those a background fetch leaves out (`CLIENT_ONLY_HEADERS`): a copy. */
export function withoutClientOnlyHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
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
export function backgroundContext(client: GatewayContext): GatewayContext {
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
