import { nestedValue, type NestedMap } from '../../src/nested-map.ts';
import type { AttemptObserver } from '../proxy/proxy.ts';
import { countsAgainstUpstream, isMeteredUnblamed, type GatewayErrorClass } from '../proxy/upstream-error.ts';
import type { FlowSeries } from './flow-series.ts';
import type { FlowStats } from './flow-stats.ts';
import type { RequestMetrics } from './request-metrics.ts';

/** Upstream attempts one instance has taken since the gateway first sent it one, and how many failed. */
export interface TrafficCounts {
  readonly requests: number;
  /** Transport failures and 5xx answers; what the client or the gateway caused is not the instance's failure. */
  readonly errors: number;
}

interface MutableCounts {
  requests: number;
  errors: number;
  /** The instance's flow statistics series, looked up once. */
  flow?: FlowSeries | undefined;
}

/** Counts measured elsewhere carry no flow series: the worker that measured them records its own. */
const zeroCounts = (): MutableCounts => ({ requests: 0, errors: 0 });

const NONE: TrafficCounts = Object.freeze({ requests: 0, errors: 0 });

/**
 * Per-instance request and error counters fed by the proxy's attempt outcomes, for the admin view
 * (whose dashboard turns them into rates). Plain numbers in nested Maps: after an instance's first
 * attempt, recording one allocates nothing. Failures also go to `switchboard_upstream_errors_total`.
 */
export class InstanceTraffic implements AttemptObserver {
  private readonly services: NestedMap<string, string, MutableCounts> = new Map();
  /** Made once, so that looking up a known instance allocates nothing. */
  private readonly newCounts = (service: string, address: string): MutableCounts => ({ requests: 0, errors: 0, flow: this.flow?.instance(service, address) });

  /** `flow`, when given, also counts every attempt (and failed attempt) in the instance's flow statistics series. */
  constructor(
    private readonly metrics?: RequestMetrics,
    private readonly flow?: FlowStats,
  ) {}

  attempt(service: string, address: string, errorClass: GatewayErrorClass | undefined): void {
    const counts = nestedValue(this.services, service, address, this.newCounts);
    counts.requests += 1;
    if (errorClass === undefined || !countsAgainstUpstream(errorClass)) {
      counts.flow?.record(0, 0, 0);
      if (errorClass !== undefined && isMeteredUnblamed(errorClass)) this.metrics?.upstreamError(service, errorClass);
      return;
    }
    counts.errors += 1;
    counts.flow?.record(1, 0, 0);
    this.metrics?.upstreamError(service, errorClass);
  }

  /** Adds counts measured elsewhere (a worker process) to `address` of `service`; feeds no metric, since the worker's own metrics count them. */
  add(service: string, address: string, requests: number, errors: number): void {
    const counts = nestedValue(this.services, service, address, zeroCounts);
    counts.requests += requests;
    counts.errors += errors;
  }

  unavailable(service: string, reason: 'no-instances' | 'no-healthy-instances'): void {
    this.metrics?.upstreamError(service, reason);
  }

  /** The counts of `address` in `service`; zeros when it has taken no attempt. */
  counts(service: string, address: string): TrafficCounts {
    return this.services.get(service)?.get(address) ?? NONE;
  }

  /**
   * Drops the counters of `service`'s addresses not in `addresses`, so instances that come and go
   * do not pile up, and the service's entry once it keeps none, so names that come and go do not either.
   */
  retain(service: string, addresses: Iterable<string>): void {
    const kept = new Set(addresses);
    this.flow?.retire(service, kept);
    const byAddress = this.services.get(service);
    if (!byAddress) return;
    for (const address of byAddress.keys()) if (!kept.has(address)) byAddress.delete(address);
    if (byAddress.size === 0) this.services.delete(service);
  }
}
