import { BehaviorSubject, ReplaySubject, switchMap, take, type Observable, type Subscription } from 'rxjs';
import { loadedForClose } from '../close-while-loading.ts';
import { errorMessage } from '../errors.ts';
import type { ConnectionCredentials } from '../connection-credentials.ts';
import type { Logger } from '../logger.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';

/**
 * A provider whose implementation is loaded on `start()`: the ZooKeeper and etcd clients (etcd3
 * brings gRPC) cost a few hundred milliseconds and tens of megabytes to load, so a gateway loads only
 * the ones its configuration names, and loads them while it already listens. Until then it reports
 * `connecting`, which is the truth: the registry is not connected yet.
 */
export class DeferredProvider implements DiscoveryProvider {
  readonly snapshots$: Observable<ProviderSnapshot>;
  readonly status$: Observable<ProviderStatus>;
  readonly #provider = new ReplaySubject<DiscoveryProvider>(1);
  readonly #status: BehaviorSubject<ProviderStatus>;
  #loading: Promise<DiscoveryProvider | undefined> | undefined;
  #forwarding: Subscription | undefined;
  #closing: Promise<void> | undefined;

  /**
   * @param name the provider's name, which `load` must give the provider it builds
   * @param load imports and builds the real provider (not started)
   */
  constructor(
    readonly name: string,
    private readonly load: () => Promise<DiscoveryProvider>,
    private readonly log: Logger,
  ) {
    this.#status = new BehaviorSubject<ProviderStatus>({ provider: name, state: 'connecting', since: Date.now() });
    this.status$ = this.#status.asObservable();
    // The real provider replays its latest snapshots on subscribe, so late subscribers miss nothing.
    this.snapshots$ = this.#provider.pipe(take(1), switchMap((provider) => provider.snapshots$));
  }

  /** Loads the implementation in the background, then starts it; a failure to load is reported as `stale`. */
  start(): void {
    if (this.#closing || this.#loading) return;
    this.#loading = this.load().then(
      (provider) => {
        if (this.#closing) return provider; // close() closes it.
        this.#forwarding = provider.status$.subscribe({
          next: (status) => {
            const current = this.#status.getValue();
            // The implementation starts out `connecting` as this one did: not a transition.
            if (status.state !== current.state || status.reason !== current.reason) this.#status.next(status);
          },
          complete: () => this.#status.complete(),
        });
        this.#provider.next(provider);
        provider.start();
        return provider;
      },
      (error: unknown) => {
        const reason = `cannot load the registry client: ${errorMessage(error)}`;
        this.log.error({ err: errorMessage(error) }, reason);
        if (!this.#closing) this.#status.next({ provider: this.name, state: 'stale', since: Date.now(), reason });
        return undefined;
      },
    );
  }

  /** Gives `credentials` to the implementation once it is loaded (see `DiscoveryProvider.replaceCredentials`). */
  replaceCredentials(credentials: ConnectionCredentials | undefined): void {
    void this.#loading?.then((provider) => {
      if (!this.#closing) provider?.replaceCredentials?.(credentials);
    });
  }

  /**
   * Closes the implementation if it was loaded; idempotent. A load in progress is waited for up to
   * `LOAD_WAIT_ON_CLOSE_MS` (an import or a client constructor that never returns must not hold the
   * gateway's stop), then abandoned with a warning: should it load later, it is closed unstarted.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const loading = this.#loading;
      const provider = loading && (await loadedForClose(loading, 'the registry client', this.log, (late) => late.close()));
      if (provider) await provider.close();
      this.#forwarding?.unsubscribe();
      this.#provider.complete();
      if (this.#status.getValue().state !== 'closed') this.#status.next({ provider: this.name, state: 'closed', since: Date.now() });
      this.#status.complete();
    })();
    return this.#closing;
  }
}
