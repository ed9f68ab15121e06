import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { componentLogger } from '../../logger.ts';
import { errorMessage } from '../../errors.ts';
import { concernsFile, watchFolder } from '../../folder-watch.ts';
import { FolderWatchDebounce } from '../../folder-watch-debounce.ts';
import { StaticProvider } from '../static/index.ts';
import { parseInstanceList } from './instance-list.ts';

export { parseInstanceList } from './instance-list.ts';

/** Quiet time after the last file-system event before the file is read again. */
export const FILE_RELOAD_DEBOUNCE_MS = 50;

/** Options of the file provider. */
export interface FileProviderOptions {
  path: string;
  /** Defaults to `file:<absolute path>`. */
  name?: string;
  /** Quiet time after the last event before the file is read (`FILE_RELOAD_DEBOUNCE_MS` by default). */
  debounceMs?: number;
  /** Longest a change waits to be read while the file keeps changing (`FOLDER_WATCH_MAX_WAIT_MS`, 2 s, by default). */
  maxWaitMs?: number;
}

/**
 * Client-side discovery from a YAML or JSON instance list that is watched for changes. A file that
 * cannot be read or parsed is refused with its path and the reason (status `stale`, logged) and
 * the previous lists stay; the next good version is applied. The folder is watched (see
 * `watchFolder`), so an editor's rename and a Kubernetes ConfigMap's `..data` swap are seen; a
 * failed watch makes the lists `stale` until it is watched again. A file that keeps changing is
 * read all the same `maxWaitMs` after its first change, and again every `maxWaitMs` while it does.
 */
export class FileProvider extends StaticProvider {
  private readonly path: string;
  private readonly log;
  private readonly reads: FolderWatchDebounce;
  private stopWatch: (() => void) | undefined;
  private lastText: string | undefined;
  /** Why the folder is not watched now (its watch failed and is being retried); undefined while it is. */
  private unwatched: string | undefined;

  constructor(options: FileProviderOptions) {
    const path = resolve(options.path);
    super(options.name ?? `file:${path}`);
    this.path = path;
    this.log = componentLogger('provider', { provider: this.name });
    this.reads = new FolderWatchDebounce(
      () => this.reload(),
      options.debounceMs ?? FILE_RELOAD_DEBOUNCE_MS,
      (error) => this.log.error({ err: errorMessage(error) }, 'reading the instance list failed'),
      options.maxWaitMs,
    );
  }

  /** Reads the file and watches its folder. */
  override start(): void {
    if (this.stopWatch || this.reads.closed) return;
    const file = basename(this.path);
    this.stopWatch = watchFolder(dirname(this.path), {
      event: (filename) => {
        if (concernsFile(filename, file)) this.reads.schedule();
      },
      failed: (error, attempt) => {
        this.log.error({ err: errorMessage(error), attempt }, 'watching the instance list failed; retrying');
        // Changes go unseen until the folder is watched again: the lists are kept but may be old,
        // and stay `stale` (a read that succeeds meanwhile does not make them current).
        this.unwatched = `${this.path}: cannot watch the folder (${errorMessage(error)})`;
        this.store.setStatus('stale', this.unwatched);
      },
      rewatched: () => {
        this.unwatched = undefined;
        this.reads.schedule(0);
      },
    });
    this.reads.schedule(0);
  }

  override async close(): Promise<void> {
    this.stopWatch?.();
    await this.reads.close();
    await super.close();
  }

  private async reload(): Promise<void> {
    if (this.reads.closed) return;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      this.refuse(`${this.path}: cannot be read (${errorMessage(error)})`);
      return;
    }
    if (text === this.lastText && this.store.currentStatus().state === 'connected') return;
    try {
      this.replace(parseInstanceList(this.path, text));
    } catch (error) {
      this.refuse(errorMessage(error));
      return;
    }
    this.lastText = text;
    if (this.unwatched === undefined) this.store.setStatus('connected');
    else this.store.setStatus('stale', this.unwatched);
    this.log.info('instance list applied');
  }

  private refuse(reason: string): void {
    this.log.error({ reason }, 'instance list refused; the previous lists stay');
    this.store.setStatus('stale', reason);
  }
}
