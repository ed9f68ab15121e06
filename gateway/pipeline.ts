// The whole gateway, top to bottom: providers → LoadBalanceConf per service → balancers → entry points →
// router → middleware onion → proxy, and beside them the admin listener that watches it all. Read this file first.
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Subject } from 'rxjs';
import { createProvider, DiscoveryAggregator, StaticProvider } from '../src/discovery/index.ts';
import { errorMessage } from '../src/errors.ts';
import { componentLogger, type Logger } from '../src/logger.ts';
import { startAdmin, type AdminListener, type ConfigChange, type RegistryRef } from './admin/index.ts';
import { staticInstanceLists, type GatewayConfig } from './config/index.ts';
import { NamedMiddlewareRegistry, type AccessLogDestination } from './middleware/index.ts';
import { createProxy, createUpgradeProxy, type ProxyDependencies } from './proxy/proxy.ts';
import { UpstreamTransports } from './transports/index.ts';
import type { ClientRequest, ClientResponse, GatewayContext } from './context.ts';
import { startEntryPoint, type EntryPoint, type ListenerLimits } from './entrypoints/index.ts';
import { createContext, createRequestRunner, policyResolver, type RequestOrigin, type RequestRunner } from './request-handler.ts';
import { ServiceBalancers } from './service-registry.ts';
import { configReloadsTotal, InstanceTraffic, recordInstances, RequestMetrics } from './telemetry/index.ts';

/** Transports (and their connections) unused for this long are closed (their instance has most likely left). */
const POOL_IDLE_MS = 5 * 60_000;

/** A running gateway. */
export interface Gateway {
  /** The port of the first entry point (`web` with `listen:`), useful with `listen: 127.0.0.1:0`. */
  readonly port: number;
  /** The bound port of every entry point, by name. */
  readonly ports: ReadonlyMap<string, number>;
  /** The port of the admin listener; undefined with `admin: false`. */
  readonly adminPort: number | undefined;
  readonly aggregator: DiscoveryAggregator;
  readonly balancers: ServiceBalancers;
  /** Per-instance request and error counters. */
  readonly traffic: InstanceTraffic;
  /** The configuration in force. */
  config(): GatewayConfig;
  /** Applies a new configuration to new requests; in-flight ones finish under the old one. */
  apply(config: GatewayConfig): void;
  /** Records a configuration change that was refused (the running configuration stays): counted and reported as an admin event. */
  refuse(error: unknown): void;
  /** Stops accepting, drains in-flight requests up to the configured deadline, then releases everything. */
  close(): Promise<void>;
}

/** Options that do not come from the configuration file. */
export interface GatewayOptions {
  readonly accessLogger?: AccessLogDestination;
  readonly log?: Logger;
}

/** Starts the gateway described by `config` and resolves once it listens. */
export async function startGateway(initial: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.log ?? componentLogger('gateway');
  let config = initial;

  // 1. Providers: every registry, plus the static instances declared in the file.
  const staticInstances = new StaticProvider('static');
  staticInstances.replace(staticInstanceLists(config));
  const providers = [...config.registries.map((registry) => createProvider(registry.location)), staticInstances];
  const registries: RegistryRef[] = providers.map((provider, index) => {
    const registry = config.registries[index];
    return { name: provider.name, url: registry?.url, kind: registry?.location.kind ?? 'static' };
  });

  // 2. One LoadBalanceConf per service, merged, deduplicated and throttled.
  // A mass removal right after a registry outage is held (self-preservation), see RemovalProtection.
  const aggregator = new DiscoveryAggregator(providers, { protection: config.removalProtection });

  // 3. A balancer per service (with active and passive health), built as soon as a registry lists it.
  const balancers = new ServiceBalancers(aggregator, config);
  const requestMetrics = new RequestMetrics();
  const traffic = new InstanceTraffic(requestMetrics);
  const healthWatch = balancers.health$.subscribe((snapshot) => {
    recordInstances(snapshot);
    traffic.retain(snapshot.service, snapshot.endpoints.map((endpoint) => endpoint.address));
  });
  const transports = new UpstreamTransports();
  const proxyDependencies: ProxyDependencies = {
    pickerFor: (service, route) => balancers.pickerFor(service, route),
    policyFor: policyResolver(() => config),
    transports,
    observer: traffic,
  };

  // 4. Router and middleware onion around the proxy, rebuilt as a whole on every reload. Named
  // middleware outlive the onion: one whose own settings did not change keeps its state (buckets).
  const namedMiddleware = new NamedMiddlewareRegistry();
  const build = (next: GatewayConfig) => {
    namedMiddleware.update(next.middlewares);
    const common = {
      namedMiddleware,
      hasService: (service: string) => balancers.has(service),
      onRequestEnd: (context: GatewayContext) => requestMetrics.request(context),
      ...(options.accessLogger ? { accessLogger: options.accessLogger } : {}),
    };
    return {
      http: createRequestRunner(next, { ...common, proxy: createProxy(proxyDependencies) }),
      upgrade: createRequestRunner(next, { ...common, proxy: createUpgradeProxy(proxyDependencies) }),
    };
  };
  let runners = build(config);

  // 5. The entry points: each accepts its protocol and tags every request with its name.
  const limits: ListenerLimits = {
    maxHeaderSize: config.limits.maxHeaderSize,
    headersTimeoutMs: config.limits.headersTimeoutMs,
    requestTimeoutMs: config.limits.requestTimeoutMs,
    keepAliveTimeoutMs: config.limits.keepAliveTimeoutMs,
  };
  const handlersFor = (origin: RequestOrigin) => ({
    request: (request: ClientRequest, response: ClientResponse) => void runners.http(createContext(request, response, log, origin)),
    upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void runUpgrade(runners.upgrade, request, socket, head, log, origin),
  });
  const entryPoints: EntryPoint[] = [];

  // 6. The admin listener: JSON views, live events, metrics and the dashboard, all read-only.
  const configChanges = new Subject<ConfigChange>();
  const sources = { aggregator, balancers, traffic, registries, config: () => config };
  let admin: AdminListener | undefined;
  const sweeper = setInterval(() => transports.sweep(POOL_IDLE_MS), POOL_IDLE_MS);
  sweeper.unref();
  const release = async () => {
    clearInterval(sweeper);
    await admin?.close();
    configChanges.complete();
    healthWatch.unsubscribe();
    balancers.close();
    await aggregator.close();
    await transports.close();
    // Bounded: a stdout nobody reads must not hold the shutdown.
    await options.accessLogger?.close(1_000);
  };

  aggregator.start();
  const drainEntryPoints = () => Promise.all(entryPoints.map((entryPoint) => entryPoint.drain(config.shutdown.drainTimeoutMs)));
  try {
    admin = config.admin ? await startAdmin(sources, configChanges, config.admin) : undefined;
    for (const entryPoint of config.entryPoints) {
      const origin = { entryPoint: entryPoint.name, secure: entryPoint.protocol === 'https' };
      entryPoints.push(await startEntryPoint(entryPoint, handlersFor(origin), limits, log));
    }
  } catch (error) {
    await drainEntryPoints();
    await release();
    throw error;
  }
  const ports = new Map(entryPoints.map((entryPoint) => [entryPoint.name, entryPoint.port]));
  for (const entryPoint of config.entryPoints) {
    log.info({ entryPoint: entryPoint.name, protocol: entryPoint.protocol, h2c: entryPoint.h2c || undefined, http2: entryPoint.http2 || undefined, host: entryPoint.listen.host, port: ports.get(entryPoint.name) }, 'entry point listening');
  }
  log.info({ ports: Object.fromEntries(ports), admin: admin?.port, registries: config.registries.map((registry) => registry.url) }, 'gateway listening');

  return {
    port: ports.get('web') ?? entryPoints[0]!.port,
    ports,
    adminPort: admin?.port,
    aggregator,
    balancers,
    traffic,
    config: () => config,
    apply(next) {
      const restartOnly = restartOnlyChanges(config, next);
      if (restartOnly.length > 0) log.warn({ keys: restartOnly }, 'these settings apply only after a restart');
      config = next;
      balancers.apply(next);
      aggregator.configureProtection(next.removalProtection);
      staticInstances.replace(staticInstanceLists(next));
      runners = build(next);
      configReloadsTotal.inc({ result: 'applied' });
      configChanges.next({ type: 'config-applied', data: { routes: next.routes.length, services: next.services.size, restartRequired: restartOnly } });
      log.info({ routes: next.routes.length, services: next.services.size }, 'configuration applied');
    },
    refuse(error) {
      configReloadsTotal.inc({ result: 'refused' });
      configChanges.next({ type: 'config-refused', data: { reason: errorMessage(error) } });
    },
    async close() {
      await drainEntryPoints();
      await release();
    },
  };
}

/** An upgrade request gets a ServerResponse on its socket, so that failures answer like any request. */
async function runUpgrade(runner: RequestRunner, request: IncomingMessage, socket: Duplex, head: Buffer, log: Logger, origin: RequestOrigin): Promise<void> {
  if (head.length > 0) socket.unshift(head);
  const response = new ServerResponse(request);
  response.shouldKeepAlive = false;
  response.assignSocket(socket as never);
  await runner(createContext(request, response, log, origin));
}

/** Keys whose change needs a restart: the entry points (with `listen`), the admin listener, the limits and the registry list. */
function restartOnlyChanges(current: GatewayConfig, next: GatewayConfig): string[] {
  const keys: string[] = [];
  if (JSON.stringify(current.entryPoints) !== JSON.stringify(next.entryPoints)) keys.push('entryPoints');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) keys.push('admin');
  if (JSON.stringify(current.limits) !== JSON.stringify(next.limits)) keys.push('limits');
  if (current.registries.map((registry) => registry.url).join() !== next.registries.map((registry) => registry.url).join()) keys.push('registries');
  return keys;
}
