import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { backoffDelay } from '../../src/backoff.ts';
import { errorMessage } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import type { CertificateFiles } from '../config/types.ts';
import { CONFIG_DEBOUNCE_MS } from '../config/watch.ts';

/**
 * Watches the folders of certificate and key files (as the configuration file is watched: the
 * folder, since tools replace files by rename) and calls `changed` once per burst of events, after
 * the configuration's debounce. A folder whose watch fails is watched again with backoff, and
 * `changed` is called then too, since the files may have changed while nobody watched.
 */
export class CertificateFolderWatch {
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly changed: () => void,
    private readonly log: Logger,
    private readonly context: Readonly<Record<string, string>>,
  ) {}

  /** Watches exactly the folders of `pairs` (certificate and key files) from now on: new ones are added, ones no longer needed are let go. */
  watch(pairs: Iterable<CertificateFiles>): void {
    const wanted = new Set<string>();
    for (const files of pairs) wanted.add(dirname(files.certFile)).add(dirname(files.keyFile));
    for (const [folder, watcher] of this.watchers) {
      if (wanted.has(folder)) continue;
      watcher.close();
      this.watchers.delete(folder);
    }
    for (const folder of wanted) if (!this.watchers.has(folder)) this.watchFolder(folder, 0);
  }

  /** Stops watching and drops a pending call. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const retry of this.retries) clearTimeout(retry);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private watchFolder(folder: string, failures: number): void {
    if (this.closed) return;
    const retry = (message: string, error: unknown) => {
      this.log.warn({ ...this.context, folder, err: errorMessage(error) }, message);
      const timer = setTimeout(() => {
        this.retries.delete(timer);
        this.watchFolder(folder, failures + 1);
      }, backoffDelay(failures, { initialMs: 500, maxMs: 30_000 }));
      timer.unref();
      this.retries.add(timer);
    };
    try {
      const watcher = watch(folder, { persistent: false }, () => this.schedule());
      watcher.on('error', (error) => {
        watcher.close();
        if (this.watchers.get(folder) === watcher) this.watchers.delete(folder);
        retry('watching a certificate folder failed; retrying', error);
        this.schedule();
      });
      this.watchers.set(folder, watcher);
    } catch (error) {
      retry('cannot watch a certificate folder; retrying', error);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    // Editors and `cp` write in bursts, and a certificate and its key change one after the other.
    this.timer = setTimeout(this.changed, CONFIG_DEBOUNCE_MS);
  }
}
