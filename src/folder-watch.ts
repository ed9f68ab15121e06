import { watch, type FSWatcher } from 'node:fs';
import { backoffDelay, type BackoffOptions } from './backoff.ts';

/** Backoff between attempts to watch a folder again after its watcher failed (or could not start). */
export const REWATCH_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/** What a folder watch reports. */
export interface FolderWatchHandlers {
  /** A file-system event in the folder; `filename` is null where the platform does not name it. */
  event(filename: string | null): void;
  /** The watch failed or could not start; `attempt` counts the failures since it last worked (0 first). It is retried. */
  failed(error: unknown, attempt: number): void;
  /** Watching again after a failure: whatever the folder holds may have changed meanwhile. */
  rewatched(): void;
}

/**
 * Watches one folder, not a file in it: editors replace files by rename and Kubernetes swaps a
 * symlinked `..data` folder, both of which a watch on the file itself would lose. A watcher that
 * fails (the folder removed, a watch limit) is started again with backoff. Returns the stop.
 */
export function watchFolder(folder: string, handlers: FolderWatchHandlers, backoff: BackoffOptions = REWATCH_BACKOFF): () => void {
  let watcher: FSWatcher | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  let stopped = false;
  const onEvent = (_event: string, filename: string | Buffer | null) => handlers.event(filename === null ? null : filename.toString());
  const fail = (error: unknown) => {
    watcher?.close();
    watcher = undefined;
    handlers.failed(error, failures);
    if (stopped) return;
    retry = setTimeout(start, backoffDelay(failures, backoff));
    retry.unref();
    failures += 1;
  };
  function start(): void {
    if (stopped) return;
    try {
      watcher = watch(folder, { persistent: false }, onEvent);
    } catch (error) {
      fail(error);
      return;
    }
    watcher.on('error', fail);
    if (failures > 0) handlers.rewatched();
    failures = 0;
  }
  start();
  return () => {
    stopped = true;
    clearTimeout(retry);
    watcher?.close();
  };
}

/**
 * Whether a folder event can have changed the file `name`: an event naming it (an edit, or an
 * editor's rename onto it), a Kubernetes-style swap of a `..data` link, or an event whose name the
 * platform did not give. Anything else in the folder (a log file written beside it, an editor's
 * swap file) must not hold a debounce open forever.
 */
export function concernsFile(filename: string | null, name: string): boolean {
  return filename === null || filename === name || filename.startsWith('..');
}
