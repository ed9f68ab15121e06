import type { ServiceBalancers } from '../service-registry.ts';

/**
 * `[service, address, inFlight, latencyMs]` of each instance a worker has requests in flight to or
 * a peak-EWMA latency estimate of (`p2c-ewma`; `null` for other balancers), as it travels over IPC.
 */
export type WireInstanceLoad = readonly (readonly [string, string, number, number | null])[];

/**
 * What a one-process gateway's admin view reads from its balancer members (`MemberView.inFlight`
 * and `latencyMs`), measured in a worker for the primary, whose own balancers make no picks: every
 * instance with requests in flight or a latency estimate above 0, the estimate rounded to 0.01 ms.
 */
export function instanceLoadOf(balancers: ServiceBalancers): [string, string, number, number | null][] {
  const load: [string, string, number, number | null][] = [];
  for (const service of balancers.names()) {
    const balancer = balancers.balancer(service)?.balancer;
    const snapshot = balancers.health(service);
    if (!balancer || !snapshot) continue;
    for (const endpoint of snapshot.endpoints) {
      const member = balancer.member(endpoint.address);
      const inFlight = member?.inFlight ?? 0;
      const latencyMs = member?.latencyMs === undefined ? null : Math.round(member.latencyMs * 100) / 100;
      if (inFlight > 0 || (latencyMs ?? 0) > 0) load.push([service, endpoint.address, inFlight, latencyMs]);
    }
  }
  return load;
}

/** Whether two reports carry the same load (a worker sends a report only when it changed). */
export function sameInstanceLoad(before: WireInstanceLoad, now: WireInstanceLoad): boolean {
  return before.length === now.length && now.every((entry, index) => entry.every((value, field) => value === before[index]![field]));
}

interface Load {
  readonly inFlight: number;
  readonly latencyMs: number | null;
}

/**
 * The primary's view of each worker's load per instance: every worker's latest report replaces its
 * previous one, and a worker that exits takes its own with it. The admin view shows the requests in
 * flight summed over the workers, and the mean of their latency estimates (each worker's balancer
 * keeps its own).
 */
export class WorkerInstanceLoad {
  /** By slot, then `service\naddress` (no service name holds a newline). */
  private readonly slots = new Map<number, Map<string, Load>>();

  /** Takes the latest report of the worker in `slot`; malformed entries are skipped. */
  receive(slot: number, load: unknown): void {
    const entries = new Map<string, Load>();
    for (const entry of Array.isArray(load) ? (load as unknown[]) : []) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string' || typeof entry[2] !== 'number') continue;
      entries.set(`${entry[0]}\n${entry[1]}`, { inFlight: entry[2], latencyMs: typeof entry[3] === 'number' ? entry[3] : null });
    }
    if (entries.size === 0) this.slots.delete(slot);
    else this.slots.set(slot, entries);
  }

  /** The worker in `slot` exited: its requests went with it. */
  exited(slot: number): void {
    this.slots.delete(slot);
  }

  /** Requests in flight to `address` of `service` over every worker, as last reported. */
  inFlight(service: string, address: string): number {
    const key = `${service}\n${address}`;
    let sum = 0;
    for (const entries of this.slots.values()) sum += entries.get(key)?.inFlight ?? 0;
    return sum;
  }

  /** The mean of the workers' latency estimates of `address` (those that have one); undefined when none has. */
  latencyMs(service: string, address: string): number | undefined {
    const key = `${service}\n${address}`;
    let sum = 0;
    let count = 0;
    for (const entries of this.slots.values()) {
      const latencyMs = entries.get(key)?.latencyMs;
      if (latencyMs === null || latencyMs === undefined) continue;
      sum += latencyMs;
      count += 1;
    }
    return count === 0 ? undefined : sum / count;
  }
}
