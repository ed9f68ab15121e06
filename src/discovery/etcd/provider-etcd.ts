import type { IWatchResponse } from 'etcd3';
import type { Observable } from 'rxjs';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from '../../backoff.ts';
import type { ConnectionCredentials } from '../../connection-credentials.ts';
import { errorMessage } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { OutageLog } from '../../outage-log.ts';
import { invalidInstancesTotal, providerResyncsTotal, registryEventsTotal } from '../../metrics.ts';
import type { RegistryLayoutSpec } from '../../registry-url.ts';
import { registryLayout } from '../layout/index.ts';
import { ProviderStore } from '../provider-store.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from '../provider.ts';
import type { PrefixListing } from './etcd-list.ts';
import { normalizePrefix, tooDeepKeyService } from './etcd-key.ts';
import { EtcdRegistryState } from './etcd-registry-state.ts';
import { EtcdSession, sessionEndProblem, type EtcdSessionHandlers, type EtcdSessionOptions, type SessionEnd } from './etcd-session.ts';
import { PublishBatch } from './publish-batch.ts';

/** Prefix under which instances register when none is configured: `/services/<service>/<instanceId>`. */
export const DEFAULT_ETCD_PREFIX = '/services';
/** Silence after which a watch stream counts as broken. */
export const DEFAULT_ETCD_STALL_TIMEOUT_MS = 10_000;
/** Deadline of each read (list page, stall probe). */
export const DEFAULT_ETCD_REQUEST_TIMEOUT_MS = 5_000;
/** Window in which watch events are gathered into one snapshot per service. */
export const DEFAULT_ETCD_BATCH_WINDOW_MS = 25;

/** Options of `createEtcdProvider`; only `endpoints` is required. */
export interface EtcdProviderOptions {
  /** Client URLs of the members (`http://host:port`); each session uses one, rotating after a failure. */
  readonly endpoints: readonly string[];
  /** Keys are `<prefix>/<service>/<instanceId>`; `/services` by default. */
  readonly prefix?: string;
  /** Provider name tagging snapshots; `etcd:<endpoints joined by ,><prefix>` by default. */
  readonly name?: string;
  /** Silence (no watch response, no probe answer) after which the stream counts as stalled; 10 s by default. */
  readonly stallTimeoutMs?: number;
  /** Deadline of each list page and probe; 5 s by default. */
  readonly requestTimeoutMs?: number;
  /** How long watch events gather before each touched service is published once; 25 ms by default. */
  readonly batchWindowMs?: number;
  /** Keys per list request; 1,000 by default. */
  readonly listPageSize?: number;
  /** Delays between failed sessions; `DEFAULT_BACKOFF` by default. */
  readonly backoff?: BackoffOptions;
  /** How keys are laid out and values encoded; `native` under `<prefix>/<service>/<instanceId>` by default. */
  readonly layout?: RegistryLayoutSpec;
  /** TLS files and user/password of every session's client. */
  readonly credentials?: ConnectionCredentials | undefined;
}

/**
 * A discovery provider over etcd: one JSON value per instance at `<prefix>/<service>/<instanceId>`.
 * Lists the prefix, publishes one snapshot per service, then watches from the next revision and
 * publishes each touched service once per batch window. A compaction, a broken stream or a stalled
 * one ends the session; the provider reports `stale` (except for a compaction), keeps the last good
 * sets, and re-lists with a new client after a capped, jittered backoff.
 */
export function createEtcdProvider(options: EtcdProviderOptions): DiscoveryProvider {
  return new EtcdProvider(options);
}

/** Opens one session; the seam where unit tests script sessions instead of talking to etcd. */
export type EtcdSessionFactory = (options: EtcdSessionOptions, handlers: EtcdSessionHandlers) => Pick<EtcdSession, 'run' | 'close'>;

const openSession: EtcdSessionFactory = (options, handlers) => new EtcdSession(options, handlers);

/** The provider behind `createEtcdProvider`; exported for tests that inject an `EtcdSessionFactory`. */
export class EtcdProvider implements DiscoveryProvider {
  readonly name: string;
  readonly snapshots$: Observable<ProviderSnapshot>;
  readonly status$: Observable<ProviderStatus>;
  private readonly prefix: string;
  private readonly log: Logger;
  /** The session failures of one outage; its end is the status line (`registry connected`). */
  private readonly outage: OutageLog;
  private readonly store: ProviderStore;
  private readonly state: EtcdRegistryState;
  private readonly batch: PublishBatch;
  private revision = '0';
  private session: ReturnType<EtcdSessionFactory> | undefined;
  private credentials: ConnectionCredentials | undefined;
  /** Set by `replaceCredentials`: the session it closed is to be replaced at once, not the provider stopped. */
  private reconnecting = false;
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Set after the first listing: later listings are resyncs and failures make the provider stale. */
  private listedOnce = false;
  /** Why the current outage began; counted once, when the re-list that ends it succeeds. */
  private resyncReason: SessionEnd['reason'] | undefined;
  private compactionsSinceListing = 0;

  constructor(
    private readonly options: EtcdProviderOptions,
    private readonly newSession: EtcdSessionFactory = openSession,
  ) {
    if (options.endpoints.length === 0) throw new RangeError('the etcd provider needs at least one endpoint');
    this.prefix = normalizePrefix(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.credentials = options.credentials;
    this.name = options.name ?? `etcd:${options.endpoints.join(',')}${this.prefix}`;
    this.log = componentLogger('provider-etcd', { provider: this.name });
    this.outage = new OutageLog(this.log, { failed: 'etcd session ended, retrying' });
    const layout = registryLayout(options.layout);
    this.store = new ProviderStore(this.name, this.log, layout.decode);
    this.snapshots$ = this.store.snapshots$;
    this.status$ = this.store.status$;
    const shape = layout.service === undefined ? '<prefix>/<service>/<instanceId>' : '<prefix>/<instanceId>';
    // Each ignored key is reported once (EtcdRegistryState remembers it). A key below an instance
    // key is a malformed registration and is treated as one: a warning and the invalid-entry count.
    // Other shapes (a key directly under the prefix, an empty segment) may be other tools' and stay at debug.
    this.state = new EtcdRegistryState(
      this.prefix,
      (key) => {
        const service = tooDeepKeyService(this.prefix, key, layout.service);
        if (service === undefined) return this.log.debug({ key }, `ignoring a key that is not ${shape}`);
        invalidInstancesTotal.inc({ provider: this.name, service });
        this.log.warn({ service, key }, `skipping a registry key below an instance key: this layout reads ${shape}`);
      },
      layout.service,
    );
    this.batch = new PublishBatch(options.batchWindowMs ?? DEFAULT_ETCD_BATCH_WINDOW_MS, (services) => this.publish(services));
  }

  start(): void {
    if (this.running || this.closing) return;
    this.running = this.supervise().catch((error: unknown) => this.log.error({ err: errorMessage(error) }, 'etcd supervisor failed'));
  }

  /** Ends the current session (or backoff) and starts a new one with `credentials`; the published sets stay until it lists. */
  replaceCredentials(credentials: ConnectionCredentials | undefined): void {
    if (this.closing) return;
    this.credentials = credentials;
    this.reconnecting = true;
    this.log.info({}, 'etcd credentials changed, reconnecting');
    this.session?.close();
    this.wake?.();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.session?.close();
      this.wake?.();
      await this.running;
      this.batch.cancel();
      this.store.complete();
    })();
    return this.closing;
  }

  private async supervise(): Promise<void> {
    const { endpoints } = this.options;
    const backoff = this.options.backoff ?? DEFAULT_BACKOFF;
    let endpointIndex = Math.floor(Math.random() * endpoints.length);
    let attempt = 0;
    while (!this.closing) {
      const endpoint = endpoints[endpointIndex % endpoints.length]!;
      this.reconnecting = false;
      this.session = this.newSession(
        {
          endpoint,
          keyPrefix: `${this.prefix}/`,
          requestTimeoutMs: this.options.requestTimeoutMs ?? DEFAULT_ETCD_REQUEST_TIMEOUT_MS,
          stallTimeoutMs: this.options.stallTimeoutMs ?? DEFAULT_ETCD_STALL_TIMEOUT_MS,
          ...(this.options.listPageSize === undefined ? {} : { listPageSize: this.options.listPageSize }),
          ...(this.credentials === undefined ? {} : { credentials: this.credentials }),
        },
        { onListed: (listing) => this.onListed(listing), onWatchResponse: (response) => this.onWatchResponse(response) },
      );
      const end = await this.session.run();
      this.session = undefined;
      // Events already applied are registry truth at their revision: publish them before anything else.
      this.batch.flushNow();
      if (this.closing) return;
      if (this.reconnecting) {
        attempt = 0;
        continue;
      }
      if (end.reason === 'closed') return;
      // A session that served for a while proves the registry healthy again: start the backoff over.
      if ((end.listedForMs ?? 0) >= backoff.maxMs) attempt = 0;
      if (this.listedOnce) this.resyncReason ??= end.reason;
      // etcd is answering after a compaction: re-list at once and stay connected, unless compactions
      // repeat back to back, which then wait like any failure instead of spinning.
      if (end.reason === 'compacted') this.compactionsSinceListing += 1;
      const relistAtOnce = end.reason === 'compacted' && this.compactionsSinceListing === 1;
      const log = { endpoint, reason: end.reason, attempt, err: end.error === undefined ? undefined : errorMessage(end.error) };
      if (relistAtOnce) this.log.info(log, 'etcd watch revision compacted, re-listing');
      else {
        this.outage.failed(log, { problem: sessionEndProblem(end) });
        if (this.listedOnce) this.store.setStatus('stale', `${end.reason}: ${log.err ?? 'no detail'}`);
        else this.store.setConnectingReason(`${end.reason}: ${log.err ?? 'no detail'}`);
        endpointIndex += 1;
      }
      await this.sleep(relistAtOnce ? 0 : backoffDelay(attempt, backoff));
      attempt += 1;
    }
  }

  private onListed(listing: PrefixListing): void {
    this.batch.cancel();
    this.revision = listing.revision;
    this.publish(this.state.replace(listing.kvs));
    if (this.resyncReason !== undefined) providerResyncsTotal.inc({ provider: this.name, reason: this.resyncReason });
    this.resyncReason = undefined;
    this.compactionsSinceListing = 0;
    this.listedOnce = true;
    this.outage.recovered();
    this.store.setStatus('connected');
  }

  private onWatchResponse(response: IWatchResponse): void {
    for (const event of response.events) registryEventsTotal.inc({ provider: this.name, kind: event.type === 'Put' ? 'put' : 'delete' });
    const touched = this.state.apply(response.events);
    this.revision = response.header.revision;
    this.batch.add(touched);
  }

  private publish(services: Iterable<string>): void {
    for (const service of services) {
      // etcd has no service node: a service whose last key went (by a watch event or a fresh listing) is gone.
      if (this.state.has(service)) this.store.publishRaw(service, this.state.entries(service), this.revision);
      else this.store.publishGone(service, this.revision);
    }
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
