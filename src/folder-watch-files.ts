import { basename, dirname } from 'node:path';
import { errorMessage } from './errors.ts';
import { concernsFile, folderWatchOutageLog, watchFolder, type FolderWatchBackoff } from './folder-watch.ts';
import { CONFIG_DEBOUNCE_MS, FOLDER_WATCH_MAX_WAIT_MS, FolderWatchDebounce } from './folder-watch-debounce.ts';
import type { Logger } from './logger.ts';

/** What a `FilesFolderWatch`'s log lines call its folders and its failed calls, so that each says what its user watches. */
export interface FilesFolderWatchWording {
  /** The folders watched, after "watching the": "certificate folder", "folder of a file the configuration names". */
  readonly folder: string;
  /** The error line of a `changed` call that failed: "reloading certificates failed". */
  readonly changeFailed: string;
}

/** Quiet time, maximum wait and rewatch backoff of a `FilesFolderWatch`. */
export interface FilesFolderWatchTiming {
  /** Quiet time after the last event before `changed` is called (`CONFIG_DEBOUNCE_MS` by default). */
  readonly debounceMs?: number;
  /** Longest an event waits for that call while events keep coming (`FOLDER_WATCH_MAX_WAIT_MS` by default). */
  readonly maxWaitMs?: number;
  /** Backoff of a folder whose watch failed (`REWATCH_BACKOFF` by default). */
  readonly rewatchBackoff?: FolderWatchBackoff;
}

/**
 * Watches the folders of a set of files (as the configuration file is watched: the folder, since
 * tools replace files by rename) and calls `changed` once per burst of events that can concern
 * those files (`concernsFile`), after the debounce, one call at a time (`FolderWatchDebounce`); a
 * burst that never leaves that quiet time (a file rewritten every few milliseconds) is called for
 * all the same once its first event is the maximum wait old. A folder whose watch fails (missing,
 * removed) is watched again with backoff, and `changed` is called then too, since the files may
 * have changed while nobody watched; the outage is logged once, not per retry (`folderWatchOutageLog`).
 */
export class FilesFolderWatch {
  /** The stop of each folder's watch. */
  private readonly watches = new Map<string, () => void>();
  /** Editors and `cp` write in bursts, and a certificate and its key change one after the other. */
  private readonly changes: FolderWatchDebounce;
  /** The names of the watched files in each folder. */
  private readonly files = new Map<string, Set<string>>();
  #changedSince: number | undefined;

  constructor(
    changed: () => Promise<void>,
    private readonly log: Logger,
    private readonly context: Readonly<Record<string, string>>,
    private readonly wording: FilesFolderWatchWording,
    private readonly timing: FilesFolderWatchTiming = {},
  ) {
    this.changes = new FolderWatchDebounce(
      (changedSince) => {
        this.#changedSince = changedSince;
        return changed();
      },
      timing.debounceMs ?? CONFIG_DEBOUNCE_MS,
      (error) => log.error({ ...context, err: errorMessage(error) }, wording.changeFailed),
      timing.maxWaitMs ?? FOLDER_WATCH_MAX_WAIT_MS,
    );
  }

  /** When (performance.now()) the first change the call in progress answers came (see `FolderWatchDebounce`). */
  get changedSince(): number | undefined {
    return this.#changedSince;
  }

  /** Watches exactly the folders of `paths` from now on, for events that can concern those files: new ones are added, ones no longer needed are let go; none lets every folder go. */
  watchFiles(paths: Iterable<string>): void {
    if (this.changes.closed) return;
    this.files.clear();
    for (const path of paths) {
      const folder = dirname(path);
      if (!this.files.has(folder)) this.files.set(folder, new Set());
      this.files.get(folder)!.add(basename(path));
    }
    for (const [folder, stop] of this.watches) {
      if (this.files.has(folder)) continue;
      stop();
      this.watches.delete(folder);
    }
    for (const folder of this.files.keys()) {
      if (this.watches.has(folder)) continue;
      const outage = folderWatchOutageLog(this.log, this.wording.folder, { ...this.context, folder });
      const handlers = {
        // Only events that can concern a watched file: another file written often in the folder (a log) would hold the debounce open forever.
        event: (filename: string | null) => {
          for (const name of this.files.get(folder) ?? []) if (concernsFile(filename, name)) return this.changes.schedule();
        },
        failed: outage.failed,
        rewatched: () => {
          outage.rewatched();
          this.changes.schedule();
        },
      };
      this.watches.set(folder, this.timing.rewatchBackoff ? watchFolder(folder, handlers, this.timing.rewatchBackoff) : watchFolder(folder, handlers));
    }
  }

  /** Calls `changed` again, after `delayMs` (the debounce by default). */
  schedule(delayMs?: number): void {
    this.changes.schedule(delayMs);
  }

  /** Stops watching and drops a pending call (one in progress finishes). */
  close(): void {
    void this.changes.close();
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }
}
