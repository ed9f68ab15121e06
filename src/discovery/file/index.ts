import { basename, dirname, resolve } from 'node:path';
import { componentLogger, type Logger } from '../../logger.ts';
import { errorMessage } from '../../errors.ts';
import { concernsFile, folderWatchOutageLog, watchFolder } from '../../folder-watch.ts';
import { FolderWatchDebounce } from '../../folder-watch-debounce.ts';
import { FolderWatchSettle, readFileWithSave, readingKey, type FileReading } from '../../folder-watch-settle.ts';
import type { RawInstance } from '../instance-codec.ts';
import { StaticProvider } from '../static/index.ts';
import { onlyAdds, parseInstanceList } from './instance-list.ts';

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
  /** How long a reading must stay the same (text and save) before it may take instances away or be refused (`FOLDER_WATCH_SETTLE_MS`, 150 ms, by default). */
  settleMs?: number;
  /** Where the provider writes its lines; a `provider` child of the root logger by default. */
  log?: Logger;
}

/**
 * Client-side discovery from a YAML or JSON instance list that is watched for changes. A file that
 * cannot be read or parsed is refused with its path and the reason (status `stale`, logged) and
 * the previous lists stay; the next good version is applied. The folder is watched (see
 * `watchFolder`), so an editor's rename and a Kubernetes ConfigMap's `..data` swap are seen; a
 * failed watch makes the lists `stale` until it is watched again. A file that keeps changing is
 * read all the same `maxWaitMs` after its first change, and again every `maxWaitMs` while it does.
 * A file can be read half-written (`cp`, an editor that does not rename), so only a list that at most
 * adds instances is applied at once: one that takes an instance away or changes one waits until the
 * file has settled (`FolderWatchSettle`), and is never applied while the file keeps changing, so a
 * truncated list does not remove live instances. A refusal waits for the settle time or the maximum
 * wait, and is logged once per save.
 */
export class FileProvider extends StaticProvider {
  private readonly path: string;
  private readonly log;
  private readonly reads: FolderWatchDebounce;
  private stopWatch: (() => void) | undefined;
  private lastText: string | undefined;
  /** The lists last applied, against which a reading is judged to only add instances. */
  private applied: ReadonlyMap<string, readonly RawInstance[]> = new Map();
  /** When a reading that takes instances away, or is refused, may be acted on. */
  private readonly settling: FolderWatchSettle;
  /** The reading (or unreadable file) last refused, so that a refusal is logged once per save. */
  private refusedKey: string | undefined;
  /** The change the run in progress answers (see `FolderWatchDebounce`), from which the maximum wait counts. */
  private changedSince: number | undefined;
  /** Whether the wait of a list that takes instances away has been logged as overdue (once per list applied). */
  private overdueWarned = false;
  /** Why the folder is not watched now (its watch failed and is being retried); undefined while it is. */
  private unwatched: string | undefined;

  constructor(options: FileProviderOptions) {
    const path = resolve(options.path);
    super(options.name ?? `file:${path}`);
    this.path = path;
    this.log = options.log ?? componentLogger('provider', { provider: this.name });
    this.settling = new FolderWatchSettle(options.settleMs, options.maxWaitMs);
    this.reads = new FolderWatchDebounce(
      (changedSince) => {
        this.changedSince = changedSince;
        return this.reload();
      },
      options.debounceMs ?? FILE_RELOAD_DEBOUNCE_MS,
      (error) => this.log.error({ err: errorMessage(error) }, 'reading the instance list failed'),
      options.maxWaitMs,
    );
  }

  /** Reads the file and watches its folder. */
  override start(): void {
    if (this.stopWatch || this.reads.closed) return;
    const file = basename(this.path);
    const folder = dirname(this.path);
    // Once at error per outage, the retries at debug, and an info line when watched again.
    const outage = folderWatchOutageLog(this.log, 'folder of the instance list', { folder }, 'error');
    this.stopWatch = watchFolder(folder, {
      event: (filename) => {
        if (concernsFile(filename, file)) this.reads.schedule();
      },
      failed: (error, attempt) => {
        outage.failed(error, attempt);
        // Changes go unseen until the folder is watched again: the lists are kept but may be old,
        // and stay `stale` (a read that succeeds meanwhile does not make them current).
        this.unwatched = `${this.path}: cannot watch the folder (${errorMessage(error)})`;
        this.store.setStatus('stale', this.unwatched);
      },
      rewatched: () => {
        outage.rewatched();
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
    let reading: FileReading;
    try {
      reading = await readFileWithSave(this.path);
    } catch (error) {
      const reason = `${this.path}: cannot be read (${errorMessage(error)})`;
      if (this.settled(`unreadable\n${reason}`)) this.refuse(`unreadable\n${reason}`, reason);
      return;
    }
    const { text } = reading;
    if (text === this.lastText && this.store.currentStatus().state === 'connected') {
      this.settling.reset();
      return;
    }
    let services: Map<string, RawInstance[]>;
    try {
      services = parseInstanceList(this.path, text);
    } catch (error) {
      if (this.settled(readingKey(reading))) this.refuse(readingKey(reading), errorMessage(error));
      return;
    }
    if (!onlyAdds(this.applied, services) && !this.settledForRemoval(readingKey(reading))) return;
    this.settling.reset();
    this.overdueWarned = false;
    this.replace(services);
    this.applied = services;
    this.lastText = text;
    this.refusedKey = undefined;
    if (this.unwatched === undefined) this.store.setStatus('connected');
    else this.store.setStatus('stale', this.unwatched);
    this.log.info('instance list applied');
  }

  /** Whether the reading named `key` has settled (`FolderWatchSettle.observe`); else reads the file again when it may have. */
  private settled(key: string): boolean {
    const verdict = this.settling.observe(key, this.changedSince);
    if (verdict.settled) return true;
    this.reads.schedule(verdict.readAgainInMs);
    return false;
  }

  /** Whether the reading named `key`, which takes instances away, has settled for real (`FolderWatchSettle.awaitSettled`); else reads the file again when it may have. */
  private settledForRemoval(key: string): boolean {
    const verdict = this.settling.awaitSettled(key, this.changedSince);
    if (verdict.settled) return true;
    if (verdict.overdue && !this.overdueWarned) {
      this.overdueWarned = true;
      this.log.warn('the instance list keeps changing; the instances it takes away stay until it stays the same for the settle time');
    }
    this.reads.schedule(verdict.readAgainInMs);
    return false;
  }

  /** Refuses the reading named `key` (logged once per save, or per reason for an unreadable file); the previous lists stay. */
  private refuse(key: string, reason: string): void {
    this.store.setStatus('stale', reason);
    if (key === this.refusedKey) return;
    this.refusedKey = key;
    this.log.error({ reason }, 'instance list refused; the previous lists stay');
  }
}
