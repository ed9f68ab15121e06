import type { Subscription } from 'rxjs';
import { createServiceBalancer, type ServiceBalancer } from '../src/balance/index.ts';
import type { Picker } from '../src/balance/picker.ts';
import type { DiscoveryAggregator } from '../src/discovery/index.ts';
import { serviceBalancerOptions, serviceSettings, type GatewayConfig } from './config/index.ts';

/**
 * The live balancer of every service the gateway routes to, created on the first request for a
 * service and rebuilt when that service's settings change in a new configuration. A service
 * exists when the configuration declares it or a registry lists it.
 */
export class ServiceBalancers {
  private readonly balancers = new Map<string, { balancer: ServiceBalancer; settings: string }>();
  private readonly listed = new Set<string>();
  private readonly subscription: Subscription;

  constructor(
    private readonly aggregator: DiscoveryAggregator,
    private config: GatewayConfig,
  ) {
    this.subscription = aggregator.services$.subscribe((names) => {
      this.listed.clear();
      for (const name of names) this.listed.add(name);
    });
  }

  /** True when `service` is declared or some registry has listed it. */
  has(service: string): boolean {
    return this.config.services.has(service) || this.listed.has(service);
  }

  /** The current picker of `service`, or undefined when the service does not exist. */
  pickerFor(service: string): Picker | undefined {
    const entry = this.balancers.get(service);
    if (entry) return entry.balancer.picker;
    if (!this.has(service)) return undefined;
    return this.create(service).picker;
  }

  /** The balancers built so far, by service; for the admin view. */
  entries(): IterableIterator<[string, ServiceBalancer]> {
    return [...this.balancers].map(([name, entry]) => [name, entry.balancer] as [string, ServiceBalancer]).values();
  }

  /** Switches to `config`; balancers whose settings changed are closed and rebuilt on their next request. */
  apply(config: GatewayConfig): void {
    this.config = config;
    for (const [service, entry] of this.balancers) {
      if (fingerprint(config, service) === entry.settings) continue;
      entry.balancer.close();
      this.balancers.delete(service);
    }
  }

  /** Closes every balancer and its health checks. */
  close(): void {
    this.subscription.unsubscribe();
    for (const entry of this.balancers.values()) entry.balancer.close();
    this.balancers.clear();
  }

  private create(service: string): ServiceBalancer {
    const settings = serviceSettings(this.config, service);
    const balancer = createServiceBalancer(this.aggregator.service(service), serviceBalancerOptions(settings));
    this.balancers.set(service, { balancer, settings: fingerprint(this.config, service) });
    return balancer;
  }
}

/** What a balancer is built from; instances are left out, since they arrive through the registry stream. */
function fingerprint(config: GatewayConfig, service: string): string {
  const { balancer, healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs } = serviceSettings(config, service);
  return JSON.stringify({ balancer, healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs });
}
