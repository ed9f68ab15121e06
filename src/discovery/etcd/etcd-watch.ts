import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';

/** Why a watch stopped being trustworthy: its start revision was compacted away, or its stream broke. */
export type WatchEndReason = 'compacted' | 'broken';

/** Callbacks of `openPrefixWatch`; none may throw (a throw ends the watch as `broken`). */
export interface PrefixWatchHandlers {
  /** The server created the watch; events from the start revision follow. */
  onCreated(): void;
  /** Each response in order; `events` is empty for progress notifications. */
  onResponse(response: IWatchResponse): void;
  /** Called at most once, when the watch ends by itself; not called after `cancel()`. */
  onEnd(reason: WatchEndReason, error: unknown): void;
}

/** A running prefix watch. */
export interface PrefixWatch {
  /**
   * Detaches the watcher from the client so that closing the client ends all its activity (etcd3
   * keeps re-creating the stream of a closed client while a watcher is attached). Waits up to
   * `graceMs` for etcd to confirm; never rejects.
   */
  cancel(graceMs: number): Promise<void>;
}

/**
 * etcd3 reports a server-side cancel only as "Watcher canceled: <reason>". etcd 3.4 cancels a watch
 * whose start revision was compacted with an empty reason (newer servers say "compacted"); any
 * other reason (permissions, a bad range) is not cured by re-listing alone and counts as broken.
 */
export function classifyWatchCancel(error: unknown): WatchEndReason {
  const message = error instanceof Error ? error.message : String(error);
  const reason = /Watcher canceled:(.*)$/s.exec(message)?.[1]?.trim();
  if (reason === undefined) return 'broken';
  return reason === '' || /compact/i.test(reason) ? 'compacted' : 'broken';
}

/**
 * Watches every key under `keyPrefix` from `fromRevision`. Listeners are attached before the
 * watcher can emit anything: etcd3 emits `error` on the watcher when the server cancels it, and an
 * `error` event without a listener would be thrown out of the gRPC stream as an uncaught exception.
 */
export function openPrefixWatch(client: Etcd3, keyPrefix: string, fromRevision: string, handlers: PrefixWatchHandlers): PrefixWatch {
  return openWatch(client.watch().prefix(keyPrefix).startRevision(fromRevision).watcher(), handlers);
}

/** Watches the single key `key` from `fromRevision`, with the same guarantees as `openPrefixWatch`. */
export function openKeyWatch(client: Etcd3, key: string, fromRevision: string, handlers: PrefixWatchHandlers): PrefixWatch {
  return openWatch(client.watch().key(key).startRevision(fromRevision).watcher(), handlers);
}

function openWatch(watcher: Watcher, handlers: PrefixWatchHandlers): PrefixWatch {
  let done = false;
  /** etcd3 has already dropped a watcher the server canceled; cancelling it again would send a second cancel whose answer etcd3 cannot route and throws on. */
  let canceledByServer = false;
  const end = (reason: WatchEndReason, error: unknown): void => {
    if (done) return;
    done = true;
    handlers.onEnd(reason, error);
  };
  // etcd3 rethrows listener exceptions asynchronously; each listener therefore catches its own.
  const guard =
    <A extends unknown[]>(fn: (...args: A) => void) =>
    (...args: A): void => {
      if (done) return;
      try {
        fn(...args);
      } catch (error) {
        end('broken', error);
      }
    };
  watcher.on('connected', guard(() => handlers.onCreated()));
  watcher.on('data', guard((response: IWatchResponse) => handlers.onResponse(response)));
  watcher.on('disconnected', (error) => end('broken', error));
  watcher.on('error', (error) => {
    canceledByServer = true;
    end(classifyWatchCancel(error), error);
  });

  return {
    async cancel(graceMs: number): Promise<void> {
      done = true;
      if (canceledByServer) return;
      let detached: Promise<void>;
      try {
        detached = watcher.cancel().catch(() => undefined);
      } catch {
        return;
      }
      const timer = new AbortController();
      await Promise.race([detached, delay(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
      timer.abort();
    },
  };
}
