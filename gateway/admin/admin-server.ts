import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { componentLogger } from '../../src/logger.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { DEFAULT_SERVER_LIMITS, type ListenAddress } from '../config/index.ts';
import { redactSecrets } from '../config/redaction.ts';
import { isAuthorized, isLoopbackHostHeader } from './admin-auth.ts';
import type { AdminSources } from './admin-sources.ts';
import { answerCachePurge, CACHE_PURGE_PATH } from './cache-purge-api.ts';
import { configView, routesView } from './config-view.ts';
import { DASHBOARD_HEADERS, type DashboardAsset } from './dashboard-assets.ts';
import type { AdminEvents } from './events.ts';
import { explainView, ExplainQueryError } from './explain-view.ts';
import { registriesView } from './registry-view.ts';
import { ServicesViewCache } from './service-view-cache.ts';
import { JsonParts, writeSliced } from './sliced-work.ts';
import { streamEvents } from './sse.ts';
import { isStatsPath, statsAnswer } from './stats-view.ts';
import { StoreApi, storePlaceOf, type StoreAnswer } from './store-api.ts';
import { tcpView } from './tcp-view.ts';
import { listenOn } from '../entrypoints/listen.ts';
import { purgeLiveCaches } from '../middleware/cache/index.ts';
import { metricsText } from '../telemetry/metrics-text.ts';

/** Where the admin listener binds and what it requires. */
export interface AdminServerOptions {
  readonly listen: ListenAddress;
  /** When set, the API and metrics need `Authorization: Bearer <token>` (`/api/events` also takes `?token=`). */
  readonly token: string | undefined;
  /** Heartbeat interval of `/api/events`. */
  readonly heartbeatMs?: number;
  /** Time a client has to send its request head; `ADMIN_HEADERS_TIMEOUT_MS` by default. */
  readonly headersTimeoutMs?: number;
  /** Event streams open at once; `ADMIN_MAX_EVENT_STREAMS` by default. */
  readonly maxEventStreams?: number;
}

/** A client that has not sent its request head by then gets 408 and is closed (slowloris), as on the proxy's listeners. */
export const ADMIN_HEADERS_TIMEOUT_MS = DEFAULT_SERVER_LIMITS.headersTimeoutMs;

/**
 * Event streams open at once, beyond which `/api/events` answers 503: each holds a subscription, a
 * timer and up to a megabyte of buffered events, so streams opened and left open without bound
 * (a script in a loop) would exhaust the process that owns the registry sessions. A dashboard tab
 * holds one.
 */
export const ADMIN_MAX_EVENT_STREAMS = 64;
/** What a client refused a stream is told to wait before trying again, in seconds. */
const EVENT_STREAMS_RETRY_AFTER_S = 5;

/** Readiness for probes, as Envoy's admin `/ready`: 200 while the gateway takes connections, 503 with the reason otherwise. */
const READY_PATH = '/ready';

const API_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } as const;
/**
 * A view with an ETag may be kept by the browser (not by shared caches: it answers a token), but
 * must be revalidated on each use: `fetch(…, { cache: 'no-cache' })` then sends `If-None-Match`.
 */
const VERSIONED_API_HEADERS = { 'cache-control': 'private, no-cache', 'x-content-type-options': 'nosniff' } as const;

/**
 * The admin listener, separate from the proxy's: JSON views of services, routes, configuration
 * and registries, live events (SSE), Prometheus metrics, readiness (`/ready`) and the dashboard.
 * Every endpoint is GET (and HEAD) but the config store's objects (store-api.ts), which take PUT and
 * DELETE with the token, and the cache purge (cache-purge-api.ts), a POST with the token. With a token, everything but the dashboard's static files and `/ready`
 * needs it; without one, only requests addressed to a loopback Host are answered. Errors are JSON `{ error, status, message }`.
 */
export class AdminServer {
  readonly server: Server;
  private readonly streams = new Set<() => void>();
  private readonly log = componentLogger('admin');
  private readonly views: ReadonlyMap<string, () => unknown>;
  /** The current ETag of the views that have one, got without building the view. */
  private readonly metrics: () => Promise<string>;
  private readonly store: StoreApi;

  constructor(
    private readonly sources: AdminSources,
    private readonly events: AdminEvents,
    private readonly assets: ReadonlyMap<string, DashboardAsset>,
    private readonly options: AdminServerOptions,
  ) {
    const services = new ServicesViewCache(sources);
    this.views = new Map<string, () => unknown>([
      ['/api/services', () => services.parts(events.providerStatuses())],
      ['/api/routes', () => routesView(sources.config())],
      ['/api/config', () => configView(sources.config(), sources.configStore?.(), sources.listening?.())],
      ['/api/registries', () => registriesView(sources, events.providerStatuses())],
      ...(sources.workers ? [['/api/workers', sources.workers] as const] : []),
      ...(sources.peers ? [['/api/peers', sources.peers] as const] : []),
      // A breaker's settings carry its fallback answer, whose headers may hold credentials.
      ...(sources.breakers ? [['/api/breakers', () => redactSecrets(sources.breakers!.view())] as const] : []),
      ['/api/tcp', async () => tcpView(sources.config(), await this.metrics(), sources.listening?.())],
    ]);
    this.metrics = sources.metrics ?? (() => metricsText());
    this.store = new StoreApi({ token: options.token, location: () => sources.storeLocation?.(), record: (change) => events.record(change) });
    const headersTimeout = options.headersTimeoutMs ?? ADMIN_HEADERS_TIMEOUT_MS;
    // Node's defaults let a trickling client hold a connection for 60 s, and check only every 30 s.
    this.server = createServer({ headersTimeout, connectionsCheckingInterval: Math.min(1_000, headersTimeout) }, (request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        // The path without its query: `/api/events?token=` carries the admin token.
        this.log.error({ err: error, path: request.url?.split('?')[0] }, 'admin request failed');
        sendError(response, 500, 'internal', 'the admin API failed to answer; see the gateway log');
      });
    });
  }

  /** Binds the configured address and resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    const { host, port } = this.options.listen;
    return listenOn(this.server, host, port);
  }

  /** Ends every event stream, closes the listener and the config store client (each bounded). */
  async close(): Promise<void> {
    for (const end of [...this.streams]) end();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await Promise.all([closed, this.store.close()]);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://admin.invalid');
    const path = url.pathname === '/index.html' ? '/' : url.pathname;
    const asset = this.assets.get(path);
    const { token } = this.options;
    // Checked before the path, so that without the token nothing is learned, not even which paths
    // exist; but `/ready`, which tells only ready or not, answers probes that name any address.
    if (token === undefined && path !== READY_PATH && !isLoopbackHostHeader(request.headers.host)) {
      return sendError(response, 403, 'forbidden', 'without an admin token, the admin API answers only requests addressed to localhost');
    }
    // `/ready` answers probes (a load balancer, a kubelet, Docker) that hold no token; it tells only ready or not.
    if (token !== undefined && !asset && path !== READY_PATH && !isAuthorized(token, { headers: request.headers, queryToken: path === '/api/events' ? url.searchParams.get('token') : null })) {
      response.setHeader('www-authenticate', 'Bearer realm="switchboard-admin"');
      return sendError(response, 401, 'unauthorized', 'send Authorization: Bearer <admin token>');
    }
    const place = storePlaceOf(path);
    if (place) return sendAnswer(response, await this.store.answer(request, place));
    if (path === CACHE_PURGE_PATH) {
      const purge = this.sources.purgeCaches ?? ((selector) => Promise.resolve({ purged: purgeLiveCaches(selector) }));
      return sendAnswer(response, await answerCachePurge(request, { token, config: () => this.sources.config(), purge }));
    }
    const view = this.views.get(path);
    const stats = isStatsPath(path);
    if (!asset && !view && !stats && path !== READY_PATH && path !== '/api/events' && path !== '/metrics' && path !== '/api/explain') return sendError(response, 404, 'not-found', `no admin endpoint at ${url.pathname}`);
    // HEAD is GET without the body (RFC 9110 §9.3.2): Node leaves the body out of a HEAD answer.
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      return sendError(response, 405, 'method-not-allowed', `${url.pathname} answers GET and HEAD only`);
    }
    if (asset) {
      response.writeHead(200, { ...DASHBOARD_HEADERS, 'content-type': asset.contentType, 'content-length': asset.body.length });
      return void response.end(asset.body);
    }
    if (view) {
      // One walk either way: a service that did not change is not serialised again, so the body of
      // an unchanged view costs the walk alone, and its tag is the version of exactly that body.
      const body = await view();
      if (!(body instanceof JsonParts)) return sendJson(response, 200, body);
      const ifNoneMatch = request.headers['if-none-match'];
      if (body.etag !== undefined && ifNoneMatch !== undefined && etagMatches(ifNoneMatch, body.etag)) {
        response.writeHead(304, { ...VERSIONED_API_HEADERS, etag: body.etag });
        return void response.end();
      }
      const headers = body.etag === undefined ? API_HEADERS : { ...VERSIONED_API_HEADERS, etag: body.etag };
      response.writeHead(200, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
      return writeSliced(response, body.parts);
    }
    if (path === READY_PATH) {
      const { ready, reason } = this.sources.ready();
      return sendJson(response, ready ? 200 : 503, { ready, reason });
    }
    if (stats) {
      const answer = await statsAnswer(this.sources, path, url.searchParams);
      return answer.status === 200 ? sendJson(response, 200, answer.body) : sendError(response, answer.status, answer.error, answer.message);
    }
    if (path === '/api/explain') return this.explain(url, response);
    if (path === '/metrics') {
      const text = await this.metrics();
      response.writeHead(200, { ...API_HEADERS, 'content-type': metricsRegistry.contentType, 'content-length': Buffer.byteLength(text) });
      return void response.end(text);
    }
    if (request.method === 'HEAD') {
      response.writeHead(200, { ...API_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
      return void response.end();
    }
    const maxStreams = this.options.maxEventStreams ?? ADMIN_MAX_EVENT_STREAMS;
    if (this.streams.size >= maxStreams) {
      response.setHeader('retry-after', String(EVENT_STREAMS_RETRY_AFTER_S));
      return sendError(response, 503, 'too-many-streams', `${maxStreams} event streams are open, the most the admin listener serves; close one (a dashboard tab) and retry`);
    }
    const end = streamEvents(request, response, this.events, this.options.heartbeatMs);
    // Freed when the stream ends for any reason: the client left, was too slow, or the server ended it.
    this.streams.add(end);
    response.once('close', () => this.streams.delete(end));
  }

  private explain(url: URL, response: ServerResponse): void {
    try {
      sendJson(response, 200, explainView(this.sources, this.events.providerStatuses(), url.searchParams));
    } catch (error) {
      if (!(error instanceof ExplainQueryError)) throw error;
      sendError(response, 400, 'bad-request', error.message);
    }
  }
}

/** `If-None-Match` against a current ETag: `*`, or any listed tag equal to it by weak comparison (RFC 9110 §13.1.2). */
export function etagMatches(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque);
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { ...API_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

function sendAnswer(response: ServerResponse, answer: StoreAnswer): void {
  for (const [name, value] of Object.entries(answer.headers ?? {})) response.setHeader(name, value);
  if (answer.body === undefined) {
    response.writeHead(answer.status, API_HEADERS);
    return void response.end();
  }
  sendJson(response, answer.status, answer.body);
}

function sendError(response: ServerResponse, status: number, error: string, message: string): void {
  if (response.headersSent) return void response.destroy();
  sendJson(response, status, { error, status, message });
}
