// The whole gateway, top to bottom: providers → LoadBalanceConf per service → balancers → entry points →
// router → middleware onion → proxy, and beside them the admin listener that watches it all. Read this file first.
// A gateway is two halves: the control plane (registries, health, admin; control-plane.ts) and the
// data plane (entry points, router, middleware, proxy; data-plane.ts). One process runs both; with
// `workers`, a primary runs the control plane and each worker a data plane fed over IPC (cluster/).
import type { DiscoveryAggregator } from '../src/discovery/index.ts';
import { componentLogger, type Logger } from '../src/logger.ts';
import { DRAINING, type Readiness } from './admin/index.ts';
import type { GatewayConfig } from './config/index.ts';
import type { AccessLogDestination } from './middleware/index.ts';
import { startControlPlane } from './control-plane.ts';
import { startDataPlane } from './data-plane.ts';
import type { ServiceBalancers } from './service-registry.ts';
import { FlowStats, InstanceTraffic, RequestMetrics, type FlowStore } from './telemetry/index.ts';
import { TrafficGuards } from './policy/traffic-guards.ts';

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
  /** Where flow statistics keep their minute/hour/day totals: this process's memory by default, a `RedisFlowStore` to sum several gateways. */
  readonly flowStore?: FlowStore;
}

/** Starts the gateway described by `config` in this one process and resolves once it listens. */
export async function startGateway(initial: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.log ?? componentLogger('gateway');

  // 1. Control plane: providers → aggregator → a balancer per service with its health → admin listener.
  const flow = new FlowStats(options.flowStore ? { store: options.flowStore } : {});
  const requestMetrics = new RequestMetrics(flow);
  const traffic = new InstanceTraffic(requestMetrics, flow);
  // Breakers, caps and retry budgets live in the data plane; the admin API reads them.
  const guards = new TrafficGuards(initial);
  const breakers = { view: () => ({ workers: [{ worker: null, breakers: guards.breakers(), services: guards.serviceLimits() }] }), changes$: guards.changes$ };
  // Ready from when the entry points listen until the drain starts (`/ready`).
  let readiness: Readiness = { ready: false, reason: 'the entry points are not listening yet' };
  const control = await startControlPlane(initial, { log, traffic, flow, admin: { breakers, ready: () => readiness } });
  // The control plane removes a forgotten service's series; the cells, breakers and caps the data plane kept for it go too.
  control.balancers.forgotten$.subscribe((service) => {
    requestMetrics.forget(service);
    guards.forget(service);
  });

  // 2. Data plane: entry points → router → named middleware → proxy, picking from those balancers.
  const data = await startDataPlane(initial, {
    balancers: control.balancers,
    observer: traffic,
    requestMetrics,
    guards,
    log,
    ...(options.accessLogger ? { accessLogger: options.accessLogger } : {}),
  }).catch(async (error: unknown) => {
    await control.close();
    throw error;
  });
  const ports = data.ports;
  readiness = { ready: true, reason: null };
  for (const entryPoint of initial.entryPoints) {
    log.info({ entryPoint: entryPoint.name, protocol: entryPoint.protocol, service: entryPoint.tcp?.service, h2c: entryPoint.h2c || undefined, http2: entryPoint.http2 || undefined, host: entryPoint.listen.host, port: ports.get(entryPoint.name) }, 'entry point listening');
  }
  log.info({ ports: Object.fromEntries(ports), admin: control.adminPort, registries: initial.registries.map((registry) => registry.url) }, 'gateway listening');

  return {
    port: ports.get('web') ?? [...ports.values()][0]!,
    ports,
    adminPort: control.adminPort,
    aggregator: control.aggregator,
    balancers: control.balancers,
    traffic,
    config: () => control.config(),
    apply(next) {
      control.apply(next);
      data.apply(next);
    },
    refuse: (error) => control.refuse(error),
    async close() {
      readiness = DRAINING;
      // Out of the peer list first: operators and the other gateways see it leave while it drains.
      await control.leave();
      await data.drain();
      await control.close();
      await data.close();
      guards.close();
    },
  };
}
