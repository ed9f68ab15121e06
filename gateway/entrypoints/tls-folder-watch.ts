import { FilesFolderWatch } from '../../src/folder-watch-files.ts';
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
 * Watches the folders of certificate and key files (`FilesFolderWatch`, its lines saying
 * "certificate folder") and calls `changed` once per burst of events that can concern them, and
 * when a folder is watched again after its watch failed. `pairSettled` holds a changed pair until
 * both its files have settled, so that a certificate written before its key is not loaded with the old key.
 */
export class CertificateFolderWatch {
  /** The folders of the pairs' files. */
  private readonly folders: FilesFolderWatch;
  /** Whether each changed pair (by its two paths) has settled. */
  private readonly settles = new Map<string, FolderWatchSettle>();

  constructor(
    changed: () => Promise<void>,
    private readonly log: Logger,
    private readonly context: Readonly<Record<string, string>>,
    private readonly timing: CertificateFolderWatchTiming = {},
  ) {
    this.folders = new FilesFolderWatch(changed, log, context, { folder: 'certificate folder', changeFailed: 'reloading certificates failed' }, timing);
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
    this.folders.watchFiles(paths);
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
    const verdict = settle.observe(reading, this.folders.changedSince);
    if (verdict.settled) return true;
    this.log.debug({ ...this.context, certFile: files.certFile, keyFile: files.keyFile, readAgainInMs: verdict.readAgainInMs }, 'certificate pair changed; held until both files have settled');
    this.folders.schedule(verdict.readAgainInMs);
    return false;
  }

  /** Says that the pair `files` reads as it serves: nothing of it waits to settle. */
  pairUnchanged(files: CertificateFiles): void {
    this.settles.get(pairId(files))?.reset();
  }

  /** Stops watching and drops a pending call (one in progress finishes). */
  close(): void {
    this.folders.close();
  }
}

function pairId(files: CertificateFiles): string {
  return `${files.certFile}\n${files.keyFile}`;
}
