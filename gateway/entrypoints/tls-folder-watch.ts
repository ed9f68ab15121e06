import { basename, dirname } from 'node:path';
import { errorMessage } from '../../src/errors.ts';
import { concernsFile, watchFolder } from '../../src/folder-watch.ts';
import { CONFIG_DEBOUNCE_MS, FOLDER_WATCH_MAX_WAIT_MS, FolderWatchDebounce } from '../../src/folder-watch-debounce.ts';
import { FolderWatchSettle } from '../../src/folder-watch-settle.ts';
import type { Logger } from '../../src/logger.ts';
import type { CertificateFiles } from '../config/types.ts';

/** Quiet time, maximum wait and settle time of a `CertificateFolderWatch`. */
export interface CertificateFolderWatchTiming {
  /** Quiet time after the last event before `changed` is called (`CONFIG_DEBOUNCE_MS` by default). */
  readonly debounceMs?: number;
  /** Longest an event waits for that call while events keep coming (`FOLDER_WATCH_MAX_WAIT_MS` by default). */
  readonly maxWaitMs?: number;
  /** How long a pair's two files must read the same (text and save) before it is loaded (`FOLDER_WATCH_SETTLE_MS` by default; see `pairSettled`). */
  readonly settleMs?: number;
}

/**
 * Watches the folders of certificate and key files (as the configuration file is watched: the
 * folder, since tools replace files by rename) and calls `changed` once per burst of events that
 * can concern those files (`concernsFile`), after the configuration's debounce, one call at a time (`FolderWatchDebounce`);
 * a burst that never leaves that quiet time (a file rewritten every few milliseconds) is called for
 * all the same once its first event is the configuration's maximum wait old. A folder whose
 * watch fails is watched again with backoff, and `changed` is called then too, since the files
 * may have changed while nobody watched. `pairSettled` holds a changed pair until both its files
 * have settled, so that a certificate written before its key is not loaded with the old key.
 */
export class CertificateFolderWatch {
  /** The stop of each folder's watch. */
  private readonly watches = new Map<string, () => void>();
  /** Editors and `cp` write in bursts, and a certificate and its key change one after the other. */
  private readonly changes: FolderWatchDebounce;
  /** The names of the watched certificate and key files in each folder. */
  private readonly files = new Map<string, Set<string>>();
  /** Whether each changed pair (by its two paths) has settled. */
  private readonly settles = new Map<string, FolderWatchSettle>();
  /** The change the call in progress answers (see `FolderWatchDebounce`), from which the maximum wait counts. */
  private changedSince: number | undefined;

  constructor(
    changed: () => Promise<void>,
    private readonly log: Logger,
    private readonly context: Readonly<Record<string, string>>,
    private readonly timing: CertificateFolderWatchTiming = {},
  ) {
    this.changes = new FolderWatchDebounce(
      (changedSince) => {
        this.changedSince = changedSince;
        return changed();
      },
      timing.debounceMs ?? CONFIG_DEBOUNCE_MS,
      (error) => log.error({ ...context, err: errorMessage(error) }, 'reloading certificates failed'),
      timing.maxWaitMs ?? FOLDER_WATCH_MAX_WAIT_MS,
    );
  }

  /** Watches exactly the folders of `pairs` (certificate and key files) from now on: new ones are added, ones no longer needed are let go. */
  watch(pairs: Iterable<CertificateFiles>): void {
    const ids = new Set<string>();
    const paths: string[] = [];
    for (const files of pairs) {
      ids.add(pairId(files));
      paths.push(files.certFile, files.keyFile);
    }
    for (const id of this.settles.keys()) if (!ids.has(id)) this.settles.delete(id);
    this.watchFiles(paths);
  }

  /**
   * Watches exactly the folders of `paths` from now on, for events that can concern those files, as
   * `watch` does for pairs; none lets every folder go. For files that are not pairs (`pairSettled`
   * is then not used): the files a refused configuration names (`watchConfig`).
   */
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

  /**
   * Whether the pair `files`, read as `reading` (its two files' texts and saves, see `readingKey`, or
   * why they cannot be read), has settled (`FolderWatchSettle`: the same reading `settleMs` apart, or
   * the latest once its change is the maximum wait old); if not, `changed` is called again when it may
   * have. A certificate and its key are written one after the other: until both have, they do not match.
   */
  pairSettled(files: CertificateFiles, reading: string): boolean {
    const id = pairId(files);
    let settle = this.settles.get(id);
    if (!settle) {
      settle = new FolderWatchSettle(this.timing.settleMs, this.timing.maxWaitMs);
      this.settles.set(id, settle);
    }
    const verdict = settle.observe(reading, this.changedSince);
    if (verdict.settled) return true;
    this.log.debug({ ...this.context, certFile: files.certFile, keyFile: files.keyFile, readAgainInMs: verdict.readAgainInMs }, 'certificate pair changed; held until both files have settled');
    this.changes.schedule(verdict.readAgainInMs);
    return false;
  }

  /** Says that the pair `files` reads as it serves: nothing of it waits to settle. */
  pairUnchanged(files: CertificateFiles): void {
    this.settles.get(pairId(files))?.reset();
  }

  /** Stops watching and drops a pending call (one in progress finishes). */
  close(): void {
    void this.changes.close();
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }
}

function pairId(files: CertificateFiles): string {
  return `${files.certFile}\n${files.keyFile}`;
}
