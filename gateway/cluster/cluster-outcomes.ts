import { nestedValue, type NestedMap } from '../../src/nested-map.ts';
import { isNotUpstreamFault, type UpstreamErrorClass, type UpstreamOutcome } from '../../src/health/index.ts';
import type { AttemptObserver } from '../proxy/proxy.ts';
import { countsAgainstUpstream, type GatewayErrorClass } from '../proxy/upstream-error.ts';

/**
 * What a worker has seen since its last batch, as it travels over IPC: the passive-health events of
 * each address in order (`null` for a success, else the upstream error class) and the traffic
 * counters to add to the admin view.
 */
export interface WireOutcomes {
  /** `[service, address, event]`, in the order they happened per address. */
  readonly events: readonly (readonly [string, string, UpstreamErrorClass | null])[];
  /** `[service, address, requests, errors]`. */
  readonly traffic: readonly (readonly [string, string, number, number])[];
}

interface Counts {
  requests: number;
  errors: number;
  /** True while this address's last event in the batch is a success. */
  lastOk: boolean;
}

const newCounts = (): Counts => ({ requests: 0, errors: 0, lastOk: false });

/**
 * A worker's outcomes between two flushes. Passive health reads only whether an attempt succeeded
 * or how it failed (outlier detection counts consecutive failures; one success resets them), so a
 * run of successes on an address travels as one event, failures the client or the gateway caused
 * (which never touch health) not at all, and traffic as counters. A batch therefore grows with the
 * failures and the addresses, not with the request rate; recording allocates nothing once an
 * address is in the batch.
 */
export class OutcomeBatch implements AttemptObserver {
  private events: [string, string, UpstreamErrorClass | null][] = [];
  private services: NestedMap<string, string, Counts> = new Map();

  /** `inner` is told of every attempt too (the worker's own metrics). */
  constructor(private readonly inner?: AttemptObserver) {}

  /** Number of events waiting; the owner flushes early when it grows large. */
  get size(): number {
    return this.events.length;
  }

  /** Records one pick's outcome for passive health. */
  record(service: string, address: string, outcome: UpstreamOutcome): void {
    const counts = this.counts(service, address);
    if (outcome.ok) {
      if (counts.lastOk) return;
      counts.lastOk = true;
      this.events.push([service, address, null]);
      return;
    }
    const errorClass = outcome.errorClass ?? 'http-5xx';
    if (isNotUpstreamFault(errorClass)) return;
    counts.lastOk = false;
    this.events.push([service, address, errorClass]);
  }

  attempt(service: string, address: string, errorClass: GatewayErrorClass | undefined): void {
    this.inner?.attempt(service, address, errorClass);
    const counts = this.counts(service, address);
    counts.requests += 1;
    if (errorClass !== undefined && countsAgainstUpstream(errorClass)) counts.errors += 1;
  }

  unavailable(service: string, reason: 'no-instances' | 'no-healthy-instances'): void {
    this.inner?.unavailable(service, reason);
  }

  /** The batch so far, emptying it; undefined when nothing happened. */
  take(): WireOutcomes | undefined {
    const traffic: [string, string, number, number][] = [];
    for (const [service, byAddress] of this.services) {
      for (const [address, counts] of byAddress) if (counts.requests > 0) traffic.push([service, address, counts.requests, counts.errors]);
    }
    if (this.events.length === 0 && traffic.length === 0) return undefined;
    const batch: WireOutcomes = { events: this.events, traffic };
    this.events = [];
    this.services = new Map();
    return batch;
  }

  private counts(service: string, address: string): Counts {
    return nestedValue(this.services, service, address, newCounts);
  }
}

/** Where the primary puts a worker's outcomes. */
export interface OutcomeSink {
  /** Feeds passive health (outlier detection) of `service`. */
  record(service: string, address: string, outcome: UpstreamOutcome): void;
  /** Adds to the admin view's traffic counters. */
  count(service: string, address: string, requests: number, errors: number): void;
}

/** Replays a batch received from a worker into `sink`; malformed entries are skipped. Returns the requests it counted. */
export function mergeOutcomes(batch: WireOutcomes, sink: OutcomeSink): number {
  let requests = 0;
  for (const event of Array.isArray(batch.events) ? batch.events : []) {
    if (!Array.isArray(event) || typeof event[0] !== 'string' || typeof event[1] !== 'string') continue;
    const errorClass = event[2];
    if (errorClass === null) sink.record(event[0], event[1], { ok: true, latencyMs: 0 });
    else if (typeof errorClass === 'string') sink.record(event[0], event[1], { ok: false, latencyMs: 0, errorClass: errorClass as UpstreamErrorClass });
  }
  for (const entry of Array.isArray(batch.traffic) ? batch.traffic : []) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string' || typeof entry[2] !== 'number' || typeof entry[3] !== 'number') continue;
    sink.count(entry[0], entry[1], entry[2], entry[3]);
    requests += entry[2];
  }
  return requests;
}
