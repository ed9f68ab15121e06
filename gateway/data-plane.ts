import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Picker } from '../src/balance/picker.ts';
import type { Logger } from '../src/logger.ts';
import type { EntryPointConfig, GatewayConfig, RouteConfig } from './config/index.ts';
import { QUEUED_WHEN_CLOSED, type ClientRequest, type ClientResponse, type GatewayContext, type QueuedResponse } from './context.ts';
import { answerHoldingSocket, NamedCertificates, recordTlsRefusal, startEntryPoint, startTcpEntryPoint, type EntryPoint, type ListenerLimits, type ListenerRefusal } from './entrypoints/index.ts';
import { NamedMiddlewareRegistry, refusalLogStep, tcpLogStep, type AccessLogDestination, type NamedMiddlewareFactory } from './middleware/index.ts';
import { sendErrorAnswer } from './proxy/error-response.ts';
import { MirrorSender } from './proxy/mirror-send.ts';
import { announcesBody } from './proxy/request-body-framing.ts';
import { createProxy, createUpgradeProxy, type AttemptObserver, type ProxyDependencies } from './proxy/proxy.ts';
import { forwardConnection } from './proxy/tcp-forward.ts';
import { tcpForwardPolicy } from './proxy/tcp-policy.ts';
import { createContext, createRequestRunner, policyResolver, type RequestOrigin, type RequestRunner } from './request-handler.ts';
import { TrafficGuards } from './policy/traffic-guards.ts';
import type { RequestMetrics } from './telemetry/index.ts';
import { loadTracer, sameTracing, type RequestTracer } from './telemetry/tracing/index.ts';
import { UpstreamTransports } from './transports/index.ts';

/** Transports (and their connections) unused for this long are closed (their instance has most likely left). */
const POOL_IDLE_MS = 5 * 60_000;
/** How long a tracer that is replaced or shut down may spend exporting what it has queued. */
const TRACER_SHUTDOWN_MS = 2_000;
/**
 * How long the upstream pools wait for their requests at shutdown before cutting them. They close
 * after the entry points' drain, which has already cut every client connection, so what is still in
 * flight has nobody to answer: a moment for the aborts to go out, not a second drain time.
 */
const UPSTREAM_CLOSE_GRACE_MS = 1_000;

/** What requests are balanced over: the pickers of `ServiceBalancers`, local or fed by a primary. */
export interface PickerLookup {
  pickerFor(service: string, route?: RouteConfig): Picker | undefined;
  has(service: string): boolean;
  /** The registries not yet connected while none has given `service` an instance set; none when absent. */
  unconnectedRegistriesOf?(service: string): readonly string[];
}

/** What the data plane takes besides its configuration. */
export interface DataPlaneDependencies {
  readonly balancers: PickerLookup;
  /** Told of every upstream attempt (per-instance traffic, upstream error metrics). */
  readonly observer: AttemptObserver;
  readonly requestMetrics: RequestMetrics;
  readonly log: Logger;
  readonly accessLogger?: AccessLogDestination;
  /** Builds named middleware; the built-in factory by default. */
  readonly middlewareFactory?: NamedMiddlewareFactory;
  /** The breakers, caps and retry budgets (shared with the admin view); a fresh set when left out. */
  readonly guards?: TrafficGuards;
  /**
   * What the listeners are built with (entry points' addresses, protocols and certificates, and the
   * limits), when not the configuration served: the file the gateway started with, for a worker
   * forked after a reload. Requests are served by the configuration given from the first one on.
   */
  readonly listeners?: Pick<GatewayConfig, 'entryPoints' | 'limits'>;
}

/** The client-facing half of a gateway: entry points, router, middleware and proxy. */
export interface DataPlane {
  /** The bound port of every entry point, by name. */
  readonly ports: ReadonlyMap<string, number>;
  /** Requests being served right now, over every entry point. */
  readonly inFlight: number;
  /** The breakers, caps and retry budgets of this data plane's services. */
  readonly guards: TrafficGuards;
  /** Applies a new configuration to new requests; in-flight ones finish under the old one. */
  apply(config: GatewayConfig): void;
  /** Stops accepting and drains in-flight requests up to the configured deadline. */
  drain(): Promise<void>;
  /** Closes upstream connections and flushes the access log; call after `drain`. */
  close(): Promise<void>;
}

/**
 * Starts every entry point of `config` with the router and middleware onion around the proxy, and
 * resolves once all listen; rejects, with nothing left listening, when one cannot start.
 */
export async function startDataPlane(initial: GatewayConfig, dependencies: DataPlaneDependencies): Promise<DataPlane> {
  const { balancers, log } = dependencies;
  let config = initial;
  const transports = new UpstreamTransports();
  const guards = dependencies.guards ?? new TrafficGuards(initial);
  const proxyDependencies: ProxyDependencies = {
    pickerFor: (service, route) => balancers.pickerFor(service, route),
    policyFor: policyResolver(() => config),
    transports,
    observer: dependencies.observer,
    guards,
    unconnectedRegistriesOf: (service) => balancers.unconnectedRegistriesOf?.(service) ?? [],
  };
  const mirrors = new MirrorSender({ pickerFor: (service) => balancers.pickerFor(service), observer: dependencies.observer });

  // Router and middleware onion around the proxy, rebuilt as a whole on every reload. Named
  // middleware outlive the onion: one whose own settings did not change keeps its state (buckets).
  const namedMiddleware = new NamedMiddlewareRegistry(dependencies.middlewareFactory);
  // The OpenTelemetry SDK is loaded only when `tracing` is set; a reload that changes it swaps the tracer.
  let tracer: RequestTracer | undefined = initial.tracing ? await loadTracer(initial.tracing) : undefined;
  const logOptions = dependencies.accessLogger ? { accessLogger: dependencies.accessLogger } : {};
  const build = (next: GatewayConfig) => {
    namedMiddleware.update(next);
    const common = {
      namedMiddleware,
      hasService: (service: string) => balancers.has(service),
      unconnectedRegistriesOf: (service: string) => balancers.unconnectedRegistriesOf?.(service) ?? [],
      onRequestEnd: (context: GatewayContext) => dependencies.requestMetrics.request(context),
      tracer,
      ...logOptions,
    };
    // A listener's own answers to malformed requests: logged and counted as requests that matched no route.
    const logRefusal = refusalLogStep(next, logOptions);
    return {
      // A tcp entry point's connections: one line each once closed, when `next` logs.
      tcpLog: tcpLogStep(next, logOptions),
      http: createRequestRunner(next, { ...common, proxy: createProxy(proxyDependencies), mirrors }),
      upgrade: createRequestRunner(next, { ...common, proxy: createUpgradeProxy(proxyDependencies) }),
      refused: (refusal: ListenerRefusal) => {
        logRefusal?.(refusal);
        dependencies.requestMetrics.refused(refusal.status);
      },
    };
  };
  let runners = build(config);

  // The entry points: each accepts its protocol and tags every request with its name.
  const listeners = dependencies.listeners ?? initial;
  const limits: ListenerLimits = {
    maxHeaderSize: listeners.limits.maxHeaderSize,
    headersTimeoutMs: listeners.limits.headersTimeoutMs,
    requestTimeoutMs: listeners.limits.requestTimeoutMs,
    keepAliveTimeoutMs: listeners.limits.keepAliveTimeoutMs,
  };
  const handlersFor = (origin: RequestOrigin) => ({
    request: (request: ClientRequest, response: ClientResponse) => void runners.http(createContext(request, response, log, origin)),
    upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void runUpgrade(upgradeRunner(runners, request), request, socket, head, log, origin),
    refused: (refusal: ListenerRefusal) => runners.refused(refusal),
  });
  const entryPoints: EntryPoint[] = [];
  // Named certificates (`certificates:`) are the configuration's, added to every TLS entry point's own.
  const namedCertificates = new NamedCertificates(log);
  const sweeper = setInterval(() => transports.sweep(POOL_IDLE_MS), POOL_IDLE_MS);
  sweeper.unref();
  const drain = async () => {
    await Promise.all(entryPoints.map((entryPoint) => entryPoint.drain(config.shutdown.drainTimeoutMs)));
  };
  const close = async () => {
    clearInterval(sweeper);
    namedCertificates.close();
    await tracer?.shutdown(TRACER_SHUTDOWN_MS);
    tracer = undefined;
    await Promise.all([transports.close(UPSTREAM_CLOSE_GRACE_MS), mirrors.close(UPSTREAM_CLOSE_GRACE_MS), tcpConnectionsRecorded(UPSTREAM_CLOSE_GRACE_MS)]);
    // Bounded: a stdout nobody reads must not hold the shutdown.
    await dependencies.accessLogger?.close(1_000);
  };
  // A tcp entry point reads its settings per connection, so a reload applies to new connections;
  // each connection gets an access log line once closed, when the configuration it opened under logs.
  // Only while the listener is of the kind the configuration in force asks for: `tls` and
  // `passthrough` wait for a restart, and an `sni` table alone on a listener that reads no server
  // name (a plain port reloaded into a passthrough one) would refuse every connection until then.
  const tcpHandler = (initialEntryPoint: EntryPointConfig) => (socket: Socket, serverName: string | undefined) => {
    const reloaded = config.entryPoints.find((entryPoint) => entryPoint.name === initialEntryPoint.name);
    const current = reloaded?.tcp !== undefined && sameTcpListener(reloaded, initialEntryPoint) ? reloaded.tcp : initialEntryPoint.tcp!;
    const logLine = runners.tcpLog;
    const clientAddress = socket.remoteAddress;
    const policy = tcpForwardPolicy(config, current, serverName);
    if (!policy) return refuseUnrouted(initialEntryPoint.name, socket, serverName);
    const forwarded = forwardConnection(socket, policy, tcpDependencies);
    if (!logLine) return forwarded;
    const logged = forwarded.then((record) => logLine(record, initialEntryPoint.name, clientAddress, serverName));
    tcpUnlogged.add(logged);
    void logged.finally(() => tcpUnlogged.delete(logged));
    return logged;
  };
  // A server name (or none) that no service takes, with no entry point service to fall back on: the
  // client's doing, counted against its entry point, never against a service or an instance.
  const refuseUnrouted = (entryPoint: string, socket: Socket, serverName: string | undefined) => {
    recordTlsRefusal(log, entryPoint, 'no-service', undefined, { remoteAddress: socket.remoteAddress, serverName });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.destroy();
    return closed;
  };
  // A connection the drain deadline cuts closes its upstream side a tick later, and only then is
  // logged: the shutdown waits for those lines (bounded) before it closes the access log.
  const tcpUnlogged = new Set<Promise<unknown>>();
  const tcpConnectionsRecorded = async (deadlineMs: number) => {
    if (tcpUnlogged.size === 0) return;
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...tcpUnlogged]), new Promise((resolve) => (bound = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(bound);
  };
  const tcpDependencies = { pickerFor: (service: string) => balancers.pickerFor(service), observer: dependencies.observer, log };
  /** Builds the tracer of `next` and, if `next` is still the configuration by then, serves with it; the old one exports what it holds. */
  const swapTracer = async (next: GatewayConfig) => {
    try {
      const replacement = next.tracing ? await loadTracer(next.tracing) : undefined;
      if (config !== next) return void (await replacement?.shutdown(0));
      const previous = tracer;
      tracer = replacement;
      runners = build(next);
      log.info({ tracing: next.tracing ? next.tracing.endpoint : false }, 'tracing settings applied');
      await previous?.shutdown(TRACER_SHUTDOWN_MS);
    } catch (error) {
      log.error({ err: error instanceof Error ? error.message : String(error) }, 'tracing could not start; requests go on without it');
    }
  };
  try {
    await namedCertificates.start(config.certificates);
    for (const entryPoint of listeners.entryPoints) {
      if (entryPoint.tcp) {
        entryPoints.push(await startTcpEntryPoint(entryPoint, tcpHandler(entryPoint), limits.headersTimeoutMs, log, namedCertificates));
        continue;
      }
      const origin = { entryPoint: entryPoint.name, secure: entryPoint.protocol === 'https', clientCertificate: entryPoint.tls?.clientAuth !== undefined };
      entryPoints.push(await startEntryPoint(entryPoint, handlersFor(origin), limits, log, namedCertificates));
    }
  } catch (error) {
    await drain();
    await close();
    throw error;
  }
  return {
    ports: new Map(entryPoints.map((entryPoint) => [entryPoint.name, entryPoint.port])),
    guards,
    get inFlight() {
      return entryPoints.reduce((sum, entryPoint) => sum + entryPoint.inFlight, 0);
    },
    apply(next) {
      config = next;
      guards.apply(next);
      runners = build(next);
      namedCertificates.apply(next.certificates).catch((error: unknown) => log.error({ err: error instanceof Error ? error.message : String(error) }, 'named certificates could not be applied; the previous ones keep serving'));
      if (!sameTracing(tracer?.settings, next.tracing)) void swapTracer(next);
    },
    drain,
    close,
  };
}

/**
 * An upgrade request gets a ServerResponse on its socket, so that failures answer like any request.
 * Node hands over the socket while earlier requests of the same connection may still be answered
 * (pipelined): the upgrade waits until none holds the socket. An answer the gateway gives itself
 * (no route, refused by a middleware, an upstream's refusal) closes the connection once it is
 * sent: the HTTP server no longer manages this socket, so nothing else would.
 */
async function runUpgrade(runner: RequestRunner, request: IncomingMessage, socket: Duplex, head: Buffer, log: Logger, origin: RequestOrigin): Promise<void> {
  if (head.length > 0) socket.unshift(head);
  for (let held = answerHoldingSocket(socket); held; held = answerHoldingSocket(socket)) {
    // Node's own 'finish' listener, added first, hands the socket to the next queued answer, if any.
    await new Promise<void>((resolve) => {
      held.once('finish', resolve);
      held.once('close', resolve);
    });
    // The connection broke while the upgrade waited its turn: it is recorded as cancelled (499),
    // as a pipelined request whose answer was queued is, and goes nowhere.
    if (socket.destroyed) return runner(createContext(request, closedWhileQueued(request), log, origin));
  }
  // The last earlier answer closed the connection (Connection: close, HTTP/1.0, a drain).
  if (!socket.writable) return void socket.destroy();
  const response = new ServerResponse(request);
  response.shouldKeepAlive = false;
  response.assignSocket(socket as never);
  response.once('finish', () => (socket as Socket).destroySoon());
  await runner(createContext(request, response, log, origin));
}

/** The response of an upgrade whose connection broke while it waited behind an earlier answer: destroyed, never given the socket (`QUEUED_WHEN_CLOSED`). */
function closedWhileQueued(request: IncomingMessage): ServerResponse {
  const response = new ServerResponse(request) as ServerResponse & QueuedResponse;
  response[QUEUED_WHEN_CLOSED] = true;
  response.destroy();
  return response;
}

/** Answers an `Upgrade: h2c` offer with a body (see `upgradeRunner`). */
const declineH2cWithBody: RequestRunner = async (context) => {
  sendErrorAnswer(context, 400, 'bad-request', 'an Upgrade: h2c offer with a body is not served: send the request without the offer, or speak HTTP/2 with prior knowledge');
};

/**
 * The runner of an upgrade request. `Upgrade: h2c` (curl --http2 on http://) is an offer the
 * gateway declines (RFC 9113 §3.1 dropped it): without a body, the request is served over HTTP/1.1
 * as if it had not been made. Node hands an upgrade's body bytes to no one, so an offer with a
 * body is refused with 400 rather than sent on without it.
 */
function upgradeRunner(runners: { http: RequestRunner; upgrade: RequestRunner }, request: IncomingMessage): RequestRunner {
  if (request.headers.upgrade?.trim().toLowerCase() !== 'h2c') return runners.upgrade;
  if (announcesBody(request.headers)) return declineH2cWithBody;
  // Served as if the offer had not been made: nothing after this (a cache, an error page) takes it for an upgrade.
  delete request.headers.upgrade;
  delete request.headers['http2-settings'];
  return runners.http;
}

/** Whether two tcp entry points' listeners are of one kind: plain, terminating TLS, or passing it through. */
function sameTcpListener(a: EntryPointConfig, b: EntryPointConfig): boolean {
  return (a.tls === undefined) === (b.tls === undefined) && a.passthrough === b.passthrough;
}
