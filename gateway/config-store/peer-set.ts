import { Gauge } from 'prom-client';
import type { Subscription } from 'rxjs';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { setLivePeerCount } from './peer-count.ts';
import { PeerRegistration, type AppliedRevision } from './peer-registration.ts';
import { PeerLag, type PeersView } from './peer-view.ts';
import { PeerWatcher, type PeerList } from './peer-watcher.ts';
import type { StoreLocation } from './store-layout.ts';

/** Gateways listed in the config store, as this gateway sees them. */
export const configPeersGauge = new Gauge({
  name: 'switchboard_config_peers',
  help: 'Gateways registered as peers in the config store, as this gateway sees the list (itself included once registered).',
  registers: [metricsRegistry],
  aggregator: 'max',
});

/** What `startPeers` needs. */
export interface PeerSetOptions {
  readonly location: StoreLocation;
  readonly id: string | undefined;
  readonly ttlMs: number;
  readonly lagAfterMs: number;
  /** The admin listener's `host:port`; null without one. */
  readonly admin: string | null;
  readonly log?: Logger;
}

/** This gateway among its peers: its own entry, the list it watches, the admin view of both. */
export interface PeerSet {
  readonly id: string;
  /** `GET /api/peers`. */
  view(): PeersView;
  /** The peers listed now (this gateway counts even before its entry is written: at least 1). */
  count(): number;
  /** Records the store revision and content digest this gateway applied (the config store reader calls it after each apply). */
  update(applied: AppliedRevision): void;
  /** Called with the new count whenever it changes (the primary forwards it to its workers). */
  onCount(listener: (count: number) => void): () => void;
  /** Removes this gateway's entry (bounded by `timeoutMs`) and stops watching. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Registers this gateway under `<root>/peers/<id>` and watches the list; keeps
 * `switchboard_config_peers` and the process's live peer count (the rate limiter's Redis fallback
 * divides by it) up to date. Returns at once: both retry with backoff while the store is away.
 */
export function startPeers(options: PeerSetOptions): PeerSet {
  const log = options.log ?? componentLogger('peers');
  const registration = new PeerRegistration({ location: options.location, id: options.id, ttlMs: options.ttlMs, admin: options.admin, log });
  const watcher = new PeerWatcher({ location: options.location, sessionTimeoutMs: options.ttlMs, log });
  const lag = new PeerLag(options.lagAfterMs);
  const listeners = new Set<(count: number) => void>();
  const countOf = (list: PeerList) => Math.max(1, list.size + (list.has(registration.id) ? 0 : 1));
  let last = 0;
  const subscription: Subscription = watcher.peers$.subscribe((list) => {
    lag.view(list, registration.current());
    configPeersGauge.set(list.size);
    const count = countOf(list);
    setLivePeerCount(count);
    if (count !== last) {
      if (last !== 0) log.info({ peers: count }, 'peer count changed');
      last = count;
      for (const listener of listeners) listener(count);
    }
  });
  registration.start();
  watcher.start();
  return {
    id: registration.id,
    view: () => lag.view(watcher.current(), registration.current()),
    count: () => countOf(watcher.current()),
    update: (applied) => registration.update(applied),
    onCount(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close(timeoutMs) {
      // Deregister first so the other gateways see this one leave while it still drains.
      await registration.close(timeoutMs);
      subscription.unsubscribe();
      await watcher.close();
      setLivePeerCount(undefined);
    },
  };
}
