import { map, Observable, Subject, type Subscription } from 'rxjs';
import { createServiceBalancer, type ServiceBalancer } from '../src/balance/index.ts';
import type { Picker } from '../src/balance/picker.ts';
import type { DiscoveryAggregator } from '../src/discovery/index.ts';
import { withDefaultProtocol, type InstanceProtocol } from '../src/discovery/instance.ts';
import type { ServiceConf } from '../src/discovery/load-balance-conf.ts';
import type { HealthSnapshot } from '../src/health/index.ts';
import { serviceBalancerOptions, serviceSettings, type GatewayConfig, type ServiceSettings } from './config/index.ts';

interface Entry {
  readonly balancer: ServiceBalancer;
  readonly settings: string;
  readonly subscription: Subscription;
}

/**
 * The live balancer of every service the gateway routes to. A service a registry lists gets its
 * balancer (and so its health checks and health state) as soon as it is listed; a service only
 * declared in the configuration gets one on its first request. A new configuration rebuilds the
 * balancers whose settings changed. A service exists when it is declared or a registry lists it.
 */
export class ServiceBalancers {
  /**
   * Replays the latest health snapshot of every service with a balancer, then emits each new one
   * as it happens, across balancer rebuilds. Completes on `close()`.
   */
  readonly health$: Observable<HealthSnapshot>;

  private readonly balancers = new Map<string, Entry>();
  private readonly latestHealth = new Map<string, HealthSnapshot>();
  private readonly healthChanges = new Subject<HealthSnapshot>();
  private readonly listed = new Set<string>();
  private readonly subscription: Subscription;

  constructor(
    private readonly aggregator: DiscoveryAggregator,
    private config: GatewayConfig,
  ) {
    this.health$ = new Observable<HealthSnapshot>((subscriber) => {
      for (const snapshot of this.latestHealth.values()) subscriber.next(snapshot);
      return this.healthChanges.subscribe(subscriber);
    });
    // The aggregator's list only grows: a service leaves only when its registry says it has no instances.
    this.subscription = aggregator.services$.subscribe((names) => {
      for (const name of names) {
        this.listed.add(name);
        if (!this.balancers.has(name)) this.create(name);
      }
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

  /** The balancer of `service`, when one has been built. */
  balancer(service: string): ServiceBalancer | undefined {
    return this.balancers.get(service)?.balancer;
  }

  /** The latest health snapshot of `service`, once its balancer has seen the registry list it. */
  health(service: string): HealthSnapshot | undefined {
    return this.latestHealth.get(service);
  }

  /** The settings `service` is balanced and checked with under the configuration in force. */
  settings(service: string): ServiceSettings {
    return serviceSettings(this.config, service);
  }

  /** Every service that is declared, listed, or has a balancer, sorted by name. */
  names(): string[] {
    return [...new Set([...this.config.services.keys(), ...this.listed, ...this.balancers.keys()])].sort();
  }

  /** Switches to `config`; balancers whose settings changed are rebuilt, at once for listed services. */
  apply(config: GatewayConfig): void {
    this.config = config;
    for (const [service, entry] of [...this.balancers]) {
      if (fingerprint(config, service) === entry.settings) continue;
      this.release(service, entry);
      if (this.listed.has(service)) this.create(service);
    }
  }

  /** Closes every balancer and its health checks, and completes `health$`. */
  close(): void {
    this.subscription.unsubscribe();
    for (const [service, entry] of [...this.balancers]) this.release(service, entry);
    this.healthChanges.complete();
  }

  private create(service: string): ServiceBalancer {
    const settings = serviceSettings(this.config, service);
    const conf = this.aggregator.service(service);
    // The service's protocol applies to instances whose registry entry named none, before health
    // checks and balancers see them, so checks and traffic speak the same protocol.
    const protocol = settings.protocol;
    const conf$ = protocol === 'http' ? conf.conf$ : conf.conf$.pipe(map((value) => withServiceProtocol(value, protocol)));
    const balancer = createServiceBalancer({ service, conf$ }, serviceBalancerOptions(settings));
    const subscription = balancer.health.endpoints$.subscribe((snapshot) => {
      this.latestHealth.set(service, snapshot);
      this.healthChanges.next(snapshot);
    });
    this.balancers.set(service, { balancer, settings: fingerprint(this.config, service), subscription });
    return balancer;
  }

  private release(service: string, entry: Entry): void {
    entry.subscription.unsubscribe();
    entry.balancer.close();
    this.balancers.delete(service);
  }
}

/** What a balancer is built from; instances are left out, since they arrive through the registry stream. */
function fingerprint(config: GatewayConfig, service: string): string {
  const { balancer, slowStart, healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs, protocol, tls } = serviceSettings(config, service);
  // The probe speaks the protocol with the TLS settings; files count by digest (PemFile hides its text).
  return JSON.stringify({ balancer, slowStart, healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs, protocol, tls });
}

/** `conf` with `protocol` for every instance whose registry entry named none; the same object when none changes. */
function withServiceProtocol(conf: ServiceConf, protocol: InstanceProtocol): ServiceConf {
  let changed = false;
  const instances = conf.instances.map((instance) => {
    const resolved = withDefaultProtocol(instance, protocol);
    changed ||= resolved !== instance;
    return resolved;
  });
  return changed ? { ...conf, instances } : conf;
}
