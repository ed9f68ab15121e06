import { Subscription } from 'rxjs';
import type { BackoffOptions } from '../../backoff.ts';
import type { ConnectionCredentials } from '../../connection-credentials.ts';
import { errorMessage } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { providerResyncsTotal } from '../../metrics.ts';
import { ZooKeeperSessionSupervisor, isZooKeeperError, readerFor, type ZooKeeperSession, type ZooKeeperSessionState } from '../../zookeeper/index.ts';
import type { RegistryLayoutSpec } from '../../registry-url.ts';
import { registryLayout } from '../layout/index.ts';
import { ProviderStore } from '../provider-store.ts';
import type { DiscoveryProvider } from '../provider.ts';
import { normalizeRoot } from './zookeeper-root.ts';
import { ZooKeeperTreeSync } from './zookeeper-tree-sync.ts';

export { normalizeRoot };

/** Root under which services register when none is configured (the Curator / Spring Cloud Zookeeper default). */
export const DEFAULT_ZOOKEEPER_ROOT = '/services';

/** Options of `createZooKeeperProvider`; only `connectString` is required. */
export interface ZooKeeperProviderOptions {
  /** `host:port[,host:port…]`, as node-zookeeper-client takes it (no chroot). */
  readonly connectString: string;
  /** Parent of the service znodes; `/services` by default. */
  readonly root?: string;
  /** Requested session timeout; also how long a disconnection lasts before the session counts as expired. */
  readonly sessionTimeoutMs?: number;
  /** Deadline for a new client's handshake; the session timeout by default. */
  readonly connectTimeoutMs?: number;
  /** Retry delays for connections and failed reads. */
  readonly backoff?: BackoffOptions;
  /** The `auth` of the registry's entry: its user and password authenticate every session (ZooKeeper's digest scheme). */
  readonly credentials?: ConnectionCredentials | undefined;
  /** Provider name tagging snapshots; `zk:<connectString><root>` by default. */
  readonly name?: string;
  /** How entries are laid out and encoded; `native` under `<root>/<service>/<instance>` by default. */
  readonly layout?: RegistryLayoutSpec;
  /**
   * Follow the tree through one persistent recursive watch (ZooKeeper 3.6+), which saves a round
   * trip per new instance and one watch per znode on the server; true by default (a registry URL's
   * `watch=`). Never under a root of `/` nor with the Dubbo layout. An older server answers that it
   * has none, and the provider then uses one-shot watches until it is closed.
   */
  readonly recursiveWatch?: boolean;
}

/**
 * A discovery provider over ZooKeeper: `<root>/<service>/<instance>` znodes, one instance per
 * znode with its payload as data. Emits whole per-service snapshots; keeps the last good sets and
 * reports `stale` while the registry is unreachable; re-reads everything on each new session.
 */
export function createZooKeeperProvider(options: ZooKeeperProviderOptions): DiscoveryProvider {
  const root = normalizeRoot(options.root ?? DEFAULT_ZOOKEEPER_ROOT);
  const name = options.name ?? `zk:${options.connectString}${root}`;
  const log = componentLogger('provider-zookeeper', { provider: name });
  const layout = registryLayout(options.layout);
  const store = new ProviderStore(name, log, layout.decode);
  const subscriptions = new Subscription();
  let supervisor: ZooKeeperSessionSupervisor | undefined;
  let tree: ZooKeeperTreeSync | undefined;
  let sessions = 0;
  /** Set while disconnected: the next `connected` on the same session re-lists before reporting `connected`. */
  let reconnecting = false;
  let everConnected = false;
  let closing: Promise<void> | undefined;
  let digest = options.credentials?.zooKeeperDigest();
  let username = options.credentials?.username;
  const watches = { recursive: options.recursiveWatch ?? true };
  /** Why each service node the current tree last failed to read (NO_AUTH) is unread, by path; the status names them while any is. */
  const unread = new Map<string, string>();

  /** The refused nodes (the first one's refusal, and how many more); undefined when every node read. */
  const unreadReason = (): string | undefined => {
    const [first, ...more] = unread.values();
    if (first === undefined) return undefined;
    return more.length === 0 ? first : `${first} (and ${more.length} more unreadable node${more.length === 1 ? '' : 's'})`;
  };

  /**
   * Puts the refusals in the status: the reason of `connected`, of `connecting` until the tree is
   * read whole, or of `stale` once connected again while a refusal (the root's) keeps it unread.
   */
  const reportUnread = (): void => {
    const reason = unreadReason();
    const { state } = store.currentStatus();
    if (state === 'connected') store.setStatus('connected', reason);
    else if (state === 'connecting' && reason !== undefined) store.setConnectingReason(reason);
    else if (state === 'stale' && reason !== undefined && supervisor?.currentState() === 'connected') store.setStatus('stale', reason);
  };

  const settle = (synced: ZooKeeperTreeSync, sync: Promise<void>): void => {
    void sync.then(() => {
      if (synced !== tree || reconnecting || supervisor?.currentState() !== 'connected') return;
      everConnected = true;
      store.setStatus('connected', unreadReason());
    });
  };

  const onSession = (session: ZooKeeperSession): void => {
    tree?.dispose();
    sessions += 1;
    if (sessions > 1) providerResyncsTotal.inc({ provider: name, reason: 'new-session' });
    reconnecting = false;
    const current: ZooKeeperTreeSync = new ZooKeeperTreeSync({
      provider: name,
      reader: readerFor(session.client),
      root,
      ...(layout.service === undefined ? {} : { service: layout.service }),
      ...(layout.instancesNode === undefined ? {} : { instancesNode: layout.instancesNode }),
      log,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      refusal: { connectString: options.connectString, username },
      // A refused read is retried with backoff while the other services are served: the status
      // (/api/registries) names the node and why as long as it is refused, also once connected.
      readFailed: (error, path) => {
        if (current !== tree || !isZooKeeperError(error, 'NO_AUTH')) return;
        unread.set(path, errorMessage(error));
        reportUnread();
      },
      readSucceeded: (path) => {
        if (current === tree && unread.delete(path)) reportUnread();
      },
      watches,
      knownServices: () => store.services(),
      publish: (service, entries, revision) => store.publishRaw(service, entries, revision),
      publishGone: (service, revision) => store.publishGone(service, revision),
    });
    tree = current;
    // The new tree reads everything again, and names again what it may not read.
    unread.clear();
    // Once connected before, a service refused (named in the reason) no longer keeps the registry stale.
    settle(current, current.sync({ refusedSettles: everConnected }));
  };

  /** Until the first session, `/api/registries` says why none was had; an outage keeps the reason `onState` gave it. */
  const onFailure = (reason: string): void => {
    if (!everConnected) store.setConnectingReason(reason);
  };

  const onState = (state: ZooKeeperSessionState): void => {
    switch (state) {
      case 'connected':
        if (reconnecting && tree) {
          reconnecting = false;
          providerResyncsTotal.inc({ provider: name, reason: 'reconnect' });
          settle(tree, tree.sync({ refusedSettles: everConnected }));
        }
        return;
      case 'disconnected':
        reconnecting = true;
        if (everConnected) store.setStatus('stale', 'disconnected from ZooKeeper');
        return;
      case 'expired':
        tree?.dispose();
        tree = undefined;
        if (everConnected) store.setStatus('stale', 'ZooKeeper session expired');
        return;
      case 'connecting':
        // A new session after an outage: the reason stays the outage's (an expired session), which says more.
        if (everConnected && store.currentStatus().state !== 'stale') store.setStatus('stale', 'connecting to ZooKeeper');
        return;
      case 'closed':
        return;
    }
  };

  return {
    name,
    snapshots$: store.snapshots$,
    status$: store.status$,
    start() {
      if (supervisor || closing) return;
      supervisor = new ZooKeeperSessionSupervisor({
        connectString: options.connectString,
        name,
        log,
        ...(options.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: options.sessionTimeoutMs }),
        ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
        ...(options.backoff ? { backoff: options.backoff } : {}),
        ...(digest === undefined ? {} : { digest }),
      });
      subscriptions.add(supervisor.session$.subscribe(guarded(log, onSession)));
      subscriptions.add(supervisor.state$.subscribe(guarded(log, onState)));
      subscriptions.add(supervisor.failures$.subscribe(guarded(log, onFailure)));
      supervisor.start();
    },
    replaceCredentials(credentials) {
      if (closing) return;
      digest = credentials?.zooKeeperDigest();
      username = credentials?.username;
      // A new session with them: the published sets stay (stale) until it lists the tree again.
      supervisor?.replaceDigest(digest);
    },
    close() {
      closing ??= (async () => {
        subscriptions.unsubscribe();
        tree?.dispose();
        tree = undefined;
        await supervisor?.close();
        store.complete();
      })();
      return closing;
    },
  };
}

/** Wraps a subscriber so that a bug in it is logged instead of escaping into the library's socket handler. */
function guarded<T>(log: Logger, handler: (value: T) => void): (value: T) => void {
  return (value) => {
    try {
      handler(value);
    } catch (error) {
      log.error({ err: errorMessage(error) }, 'ZooKeeper provider failed to handle a session event');
    }
  };
}
