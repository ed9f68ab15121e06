import { randomBytes } from 'node:crypto';
import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { AdminSources } from './admin-sources.ts';
import { serviceView } from './service-view.ts';
import { JsonParts, SliceClock } from './sliced-work.ts';

interface CachedService {
  readonly inputs: readonly unknown[];
  /** Undefined until a body needs it (a walk for the ETag alone builds nothing). */
  json: Buffer | undefined;
}

const OPEN = Buffer.from('{"services":[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']}');

/**
 * `GET /api/services` serialised once per change: each service's JSON is kept with everything it
 * was built from (`serviceViewInputs`: the configuration, health snapshot, registry listings and
 * provider statuses, compared by identity, and each instance's live numbers, by value), and built
 * again only when one of those differs. The walk over the services yields to the event loop every
 * `ADMIN_SLICE_MS`. Building and serialising every service in one go blocked the event loop, and
 * so proxied traffic, for tens of milliseconds per call with a thousand services (bench/admin).
 *
 * The same walk keeps a version of the whole view, raised whenever a service's inputs or the list
 * of services changed, which the answer carries as its ETag: a client that sends it back in
 * `If-None-Match` (the dashboard, every two seconds) is told 304 after one walk that serialised no
 * service again (each unchanged service's JSON is kept). Walks run one at a time, so that the ETag
 * given with a body is the version of exactly that body.
 */
export class ServicesViewCache {
  private readonly byService = new Map<string, CachedService>();
  /** Filled for each service and copied only when it changed, so that an unchanged service allocates nothing. */
  private readonly scratch: unknown[] = [];
  private names: readonly string[] = [];
  private version = 0;
  /** Versions restart with the process: this keeps an ETag of an earlier run (or another cache) from matching. */
  private readonly epoch = randomBytes(6).toString('base64url');
  private walking: Promise<unknown> = Promise.resolve();

  constructor(private readonly sources: AdminSources) {}

  /** The body of `GET /api/services`, as `servicesView` serialises it, in parts, with its ETag. */
  parts(statuses: readonly ProviderStatus[]): Promise<JsonParts> {
    return this.exclusive(async () => {
      const parts: Buffer[] = [OPEN];
      const length = await this.walk(statuses, parts);
      parts.push(CLOSE);
      return new JsonParts(parts, length + OPEN.length + CLOSE.length, this.currentEtag());
    });
  }

  private currentEtag(): string {
    return `"${this.epoch}-${this.version}"`;
  }

  /** Runs `work` after every walk started before it ended, whether it failed or not. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.walking.then(work);
    this.walking = run.catch(() => undefined);
    return run;
  }

  /**
   * Compares every service's inputs with those last seen, raising the version on any difference;
   * builds what is missing and appends each service's JSON (comma-separated) to `parts`
   * and returns their bytes.
   */
  private async walk(statuses: readonly ProviderStatus[], parts: Buffer[]): Promise<number> {
    const clock = new SliceClock();
    const byProvider = new Map(statuses.map((status) => [status.provider, status]));
    const names = this.sources.balancers.names();
    let changed = !sameInputs(this.names, names);
    let length = 0;
    for (const name of names) {
      await clock.pause();
      const inputs = serviceViewInputs(this.sources, name, byProvider, this.scratch);
      let cached = this.byService.get(name);
      if (!cached || !sameInputs(cached.inputs, inputs)) {
        cached = { inputs: [...inputs], json: undefined };
        this.byService.set(name, cached);
        changed = true;
      }
      cached.json ??= Buffer.from(JSON.stringify(serviceView(this.sources, name, byProvider)));
      if (parts.length > 1) {
        parts.push(COMMA);
        length += COMMA.length;
      }
      parts.push(cached.json);
      length += cached.json.length;
    }
    this.names = names;
    if (changed) this.version += 1;
    if (this.byService.size > names.length) {
      const shown = new Set(names);
      for (const name of this.byService.keys()) if (!shown.has(name)) this.byService.delete(name);
    }
    return length;
  }
}

/**
 * Everything `serviceView(sources, name)` reads, flat, in `inputs` (emptied first): the objects it
 * reads from (immutable: a change replaces them) and the live numbers of each instance's balancer
 * member and traffic counters.
 */
export function serviceViewInputs(sources: AdminSources, name: string, statuses: ReadonlyMap<string, ProviderStatus>, inputs: unknown[] = []): unknown[] {
  const snapshot = sources.balancers.health(name);
  const balancer = sources.balancers.balancer(name)?.balancer;
  inputs.length = 0;
  inputs.push(sources.config(), snapshot, sources.aggregator.service(name).current(), balancer);
  for (const listing of sources.aggregator.snapshotsOf(name).values()) {
    const status = statuses.get(listing.provider);
    inputs.push(listing, status?.state, status?.since, status?.reason);
  }
  for (const endpoint of snapshot?.endpoints ?? []) {
    const member = balancer?.member(endpoint.address);
    const traffic = sources.traffic.counts(name, endpoint.address);
    inputs.push(member?.weight, member?.rampEndsAt, member?.inFlight, sources.instanceLoad?.inFlight(name, endpoint.address), member?.latencyMs, sources.instanceLoad?.latencyMs(name, endpoint.address), traffic.requests, traffic.errors);
  }
  return inputs;
}

function sameInputs(before: readonly unknown[], now: readonly unknown[]): boolean {
  if (before.length !== now.length) return false;
  for (let index = 0; index < now.length; index += 1) if (before[index] !== now[index]) return false;
  return true;
}
