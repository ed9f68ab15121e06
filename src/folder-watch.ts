import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename } from 'node:path';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/** Backoff between attempts to watch a folder again, with a lower cap while the folder does not exist. */
export interface FolderWatchBackoff extends BackoffOptions {
  /**
   * Longest wait between attempts while the folder does not exist (ENOENT); `maxMs` when not set.
   * Such an attempt costs one failed system call and holds nothing, and the folder's files are
   * wanted as soon as it appears: a certificate folder or a CA bundle's folder created after the
   * configuration that names it is seen this late at most, not `maxMs` late.
   */
  readonly missingMaxMs?: number;
}

/** Backoff between attempts to watch a folder again after its watcher failed (or could not start): up to 30 s, 2 s while the folder does not exist. */
export const REWATCH_BACKOFF: FolderWatchBackoff = { initialMs: 500, maxMs: 30_000, missingMaxMs: 2_000 };

/** What a folder watch reports. */
export interface FolderWatchHandlers {
  /** A file-system event in the folder; `filename` is null where the platform does not name it. */
  event(filename: string | null): void;
  /** The watch failed, could not start, or its folder was removed or replaced; `attempt` counts the failures since it last worked (0 first). It is retried. */
  failed(error: unknown, attempt: number): void;
  /** Watching again after a failure: whatever the folder holds may have changed meanwhile. */
  rewatched(): void;
}

/**
 * Watches one folder, not a file in it: editors replace files by rename and Kubernetes swaps a
 * symlinked `..data` folder, both of which a watch on the file itself would lose. A watcher that
 * fails (the folder missing, a watch limit) is started again with backoff; so is one whose folder
 * is removed or replaced (moved away, another put in its place), which Linux reports as an event
 * naming the folder itself, not as an error: the watch would go on silently on an inode nobody
 * writes to any more. Returns the stop.
 */
export function watchFolder(folder: string, handlers: FolderWatchHandlers, backoff: FolderWatchBackoff = REWATCH_BACKOFF): () => void {
  const name = basename(folder);
  let watcher: FSWatcher | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  let stopped = false;
  const fail = (error: unknown) => {
    watcher?.close();
    watcher = undefined;
    handlers.failed(error, failures);
    if (stopped) return;
    const missing = (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    const maxMs = missing && backoff.missingMaxMs !== undefined ? Math.min(backoff.maxMs, backoff.missingMaxMs) : backoff.maxMs;
    retry = setTimeout(start, backoffDelay(failures, { ...backoff, maxMs }));
    retry.unref();
    failures += 1;
  };
  function start(): void {
    if (stopped) return;
    let started: FSWatcher | undefined;
    let inode = 0;
    try {
      started = watch(folder, { persistent: false }, (_event, filename) => {
        // A late event or error of a watcher already failed (a removal raises more than one) is not this watch's.
        if (watcher !== started) return;
        const changed = filename === null ? null : filename.toString();
        handlers.event(changed);
        if (changed === null || changed === name) gone(started!, inode);
      });
      inode = statSync(folder).ino;
    } catch (error) {
      // Watching, but the folder is gone already (removed just then): retried as any failure.
      started?.close();
      fail(error);
      return;
    }
    watcher = started;
    const current = started;
    current.on('error', (error) => {
      if (watcher === current) fail(error);
    });
    if (failures > 0) handlers.rewatched();
    failures = 0;
  }
  /** Fails the watch if its folder is no longer the one watched (an event naming the folder is also what a file of the same name in it raises). */
  const gone = (of: FSWatcher, inode: number) => {
    // Stopped by the event's own handler.
    if (stopped) return;
    let now: number;
    try {
      now = statSync(folder).ino;
    } catch (error) {
      if (watcher === of) fail(error);
      return;
    }
    if (now !== inode && watcher === of) fail(Object.assign(new Error(`${folder} was replaced by another folder`), { code: 'EREPLACED' }));
  };
  start();
  return () => {
    stopped = true;
    clearTimeout(retry);
    watcher?.close();
  };
}

/**
 * The log lines of a folder watch's outages, for its `failed` and `rewatched` handlers: the loss of
 * the watch once at `level` (warn by default), each failed retry after it at debug, and one info
 * line when it watches again, so that a folder missing for hours logs two lines, not one per retry.
 * `what` names the folder for the reader ("certificate folder"); `fields` go on every line.
 */
export function folderWatchOutageLog(
  log: Logger,
  what: string,
  fields: Readonly<Record<string, unknown>>,
  level: 'warn' | 'error' = 'warn',
): Pick<FolderWatchHandlers, 'failed' | 'rewatched'> {
  return {
    failed: (error, attempt) => {
      const line = { ...fields, attempt, err: errorMessage(error) };
      if (attempt === 0) log[level](line, `watching the ${what} failed; retrying (further failures at debug)`);
      else log.debug(line, `watching the ${what} failed again; retrying`);
    },
    rewatched: () => log.info(fields, `watching the ${what} again`),
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
