import { basename, dirname } from 'node:path';
import { errorMessage } from '../../src/errors.ts';
import { concernsFile, watchFolder } from '../../src/folder-watch.ts';
import { FOLDER_WATCH_MAX_WAIT_MS, FolderWatchDebounce } from '../../src/folder-watch-debounce.ts';
import type { Logger } from '../../src/logger.ts';
import type { CertificateFiles } from '../config/types.ts';
import { CONFIG_DEBOUNCE_MS } from '../config/watch.ts';

/** Quiet time and maximum wait of a `CertificateFolderWatch`. */
export interface CertificateFolderWatchTiming {
  /** Quiet time after the last event before `changed` is called (`CONFIG_DEBOUNCE_MS` by default). */
  readonly debounceMs?: number;
  /** Longest an event waits for that call while events keep coming (`FOLDER_WATCH_MAX_WAIT_MS` by default). */
  readonly maxWaitMs?: number;
}

/**
 * Watches the folders of certificate and key files (as the configuration file is watched: the
 * folder, since tools replace files by rename) and calls `changed` once per burst of events that
 * can concern those files (`concernsFile`), after the configuration's debounce, one call at a time (`FolderWatchDebounce`);
 * a burst that never leaves that quiet time (a file rewritten every few milliseconds) is called for
 * all the same once its first event is the configuration's maximum wait old. A folder whose
 * watch fails is watched again with backoff, and `changed` is called then too, since the files
 * may have changed while nobody watched.
 */
export class CertificateFolderWatch {
  /** The stop of each folder's watch. */
  private readonly watches = new Map<string, () => void>();
  /** Editors and `cp` write in bursts, and a certificate and its key change one after the other. */
  private readonly changes: FolderWatchDebounce;
  /** The names of the watched certificate and key files in each folder. */
  private readonly files = new Map<string, Set<string>>();

  constructor(
    changed: () => Promise<void>,
    private readonly log: Logger,
    private readonly context: Readonly<Record<string, string>>,
    timing: CertificateFolderWatchTiming = {},
  ) {
    this.changes = new FolderWatchDebounce(
      changed,
      timing.debounceMs ?? CONFIG_DEBOUNCE_MS,
      (error) => log.error({ ...context, err: errorMessage(error) }, 'reloading certificates failed'),
      timing.maxWaitMs ?? FOLDER_WATCH_MAX_WAIT_MS,
    );
  }

  /** Watches exactly the folders of `pairs` (certificate and key files) from now on: new ones are added, ones no longer needed are let go. */
  watch(pairs: Iterable<CertificateFiles>): void {
    if (this.changes.closed) return;
    this.files.clear();
    for (const files of pairs) {
      for (const path of [files.certFile, files.keyFile]) {
        const folder = dirname(path);
        if (!this.files.has(folder)) this.files.set(folder, new Set());
        this.files.get(folder)!.add(basename(path));
      }
    }
    for (const [folder, stop] of this.watches) {
      if (this.files.has(folder)) continue;
      stop();
      this.watches.delete(folder);
    }
    for (const folder of this.files.keys()) {
      if (this.watches.has(folder)) continue;
      const stop = watchFolder(folder, {
        // Only events that can concern a watched file: another file written often in the folder (a log) would hold the debounce open forever.
        event: (filename) => {
          for (const name of this.files.get(folder) ?? []) if (concernsFile(filename, name)) return this.changes.schedule();
        },
        failed: (error, attempt) => this.log.warn({ ...this.context, folder, attempt, err: errorMessage(error) }, 'watching a certificate folder failed; retrying'),
        rewatched: () => this.changes.schedule(),
      });
      this.watches.set(folder, stop);
    }
  }

  /** Stops watching and drops a pending call (one in progress finishes). */
  close(): void {
    void this.changes.close();
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }
}
