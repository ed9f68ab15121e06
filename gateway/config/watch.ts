import { basename, dirname, resolve } from 'node:path';
import { Observable } from 'rxjs';
import type { BackoffOptions } from '../../src/backoff.ts';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import { concernsFile, REWATCH_BACKOFF, watchFolder } from '../../src/folder-watch.ts';
import { FolderWatchDebounce } from '../../src/folder-watch-debounce.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { parseConfig, readConfigFile, type ConfigFileReading } from './load.ts';
import type { GatewayConfig } from './types.ts';

/** One reading of the configuration file: a config to apply, or the reason it was refused. */
export type ConfigResult =
  /** `text` is what `config` was parsed from, so that another process can parse the same configuration. */
  | { readonly ok: true; readonly config: GatewayConfig; readonly text: string }
  | { readonly ok: false; readonly error: ConfigFileError };

/** Settings of `watchConfig`. */
export interface WatchConfigOptions {
  /** Quiet time after the last change event before the file is read; editors write in bursts. */
  readonly debounceMs?: number;
  /**
   * Emit the file's current result first (true by default): the race-free start is to apply that
   * first result (or exit on a refusal) and then each change. With false, the file as read at
   * subscription is only the baseline, and an edit made between an earlier `loadConfig` and the
   * subscription would go unnoticed.
   */
  readonly emitCurrent?: boolean;
  /** Backoff between attempts to watch the folder again after its watcher failed. */
  readonly rewatchBackoff?: BackoffOptions;
  /** How long a refused text must stay unchanged before its refusal is reported (`CONFIG_SETTLE_MS` by default). */
  readonly settleMs?: number;
  /** Where the watch writes its lines; a `config-watch` child of the root logger by default. */
  readonly log?: Logger;
}

/** Default quiet time before a changed file is read. */
export const CONFIG_DEBOUNCE_MS = 200;

/**
 * Default time a refused text must stay unchanged before it is reported: a file written in several
 * `write()` calls (`cat big.yaml > gateway.yaml`, an editor that does not rename) can be read between
 * two of them, and its first half is no configuration. Traefik's file provider and Kubernetes-style
 * watchers wait for such bursts the same way; a refusal costs this much delay, an applied text none.
 */
export const CONFIG_SETTLE_MS = 150;

/**
 * Watches the configuration file: emits the current result, then one each time the text changes.
 * The folder is watched, not the file: editors replace files by rename and Kubernetes swaps a symlinked folder,
 * both of which a file watch would lose. Events naming the file (see `concernsFile`) are debounced, then the file is
 * read; unchanged text is skipped, so only real edits reach the caller (a file that cannot be read
 * is reported once), except after a refusal: saving the same text again (`touch`) retries it, for a refusal
 * by a file the configuration names that has appeared since; the other events of the save it was refused in do not.
 * A refusal is reported only once the refused text has stayed unchanged for `settleMs`: a further change in that
 * time (the rest of a write read half-way) supersedes it unreported. The caller applies `ok` results and keeps its running config on refused ones.
 * Never errors: a failed folder watch is reported once and retried with backoff. Unsubscribing
 * stops the watch.
 */
export function watchConfig(path: string, options: WatchConfigOptions = {}): Observable<ConfigResult> {
  const debounceMs = options.debounceMs ?? CONFIG_DEBOUNCE_MS;
  const rewatchBackoff = options.rewatchBackoff ?? REWATCH_BACKOFF;
  const settleMs = options.settleMs ?? CONFIG_SETTLE_MS;
  const log = options.log ?? componentLogger('config-watch', { path });
  const fileName = basename(path);
  return new Observable<ConfigResult>((subscriber) => {
    // undefined: not read yet; null: the last read failed; else the last text read.
    let last: string | null | undefined;
    // The save (see `ConfigFileReading`) whose text `last` was refused; undefined when `last` was not refused.
    let refusedSave: string | undefined;
    // Only the first read may be a baseline (see `emitCurrent`).
    let emitNext = options.emitCurrent ?? true;
    // Whether the first reading (the start's, or the baseline) has been done.
    let started = false;
    // A refusal not reported yet, until its text has stayed unchanged for `settleMs` since `since` (performance.now()).
    let held: { readonly text: string; readonly result: ConfigResult; readonly since: number } | undefined;

    const read = async () => {
      const emit = emitNext;
      const change = started;
      emitNext = true;
      started = true;
      let reading: ConfigFileReading;
      try {
        reading = await readConfigFile(path);
      } catch (error) {
        held = undefined;
        if (last !== null && emit && !reads.closed) subscriber.next({ ok: false, error: error as ConfigFileError });
        last = null;
        refusedSave = undefined;
        return;
      }
      const { text, save } = reading;
      if (held !== undefined) {
        if (text === held.text) {
          // Unchanged since it was refused: reported once it has been so for the whole settle time (an
          // event of the same write can bring this read early), then as any refusal.
          const waitedMs = performance.now() - held.since;
          if (waitedMs < settleMs) {
            reads.schedule(settleMs - waitedMs);
            return;
          }
          const { result } = held;
          held = undefined;
          last = text;
          refusedSave = save;
          if (!reads.closed) subscriber.next(result);
          return;
        }
        // The file changed again before the refusal was reported: a write read half-way, not a save.
        held = undefined;
      }
      // A refused text is read again when the file is saved again, even unchanged: it may be refused for
      // a file it names (a CA bundle, a key) that is there now, copied in after the edit. Only a new save
      // counts: one save raises several events (a write's truncation, then its text; the steps of a
      // Kubernetes swap), and a read after the first can already see the whole text, which the later
      // events would otherwise refuse again (a reload counted as refused twice).
      if (text === last && (refusedSave === undefined || refusedSave === save)) return;
      // An empty file after a first reading is a write caught between its truncation and its text
      // (`>`, most tools that do not rename): the write's own event reads it again. Applied, it would
      // drop every route for the defaults; one emptied on purpose is refused the same way, loudly.
      if (change && text.trim() === '') {
        log.warn('the configuration file is empty: the running configuration stays (a write in progress is read again when it ends)');
        return;
      }
      if (!emit || reads.closed) {
        last = text;
        refusedSave = undefined;
        return;
      }
      const result = parse(path, text);
      if (!result.ok && settleMs > 0) {
        // `last` stays the text the caller has, so that the rest of a write is compared with that.
        held = { text, result, since: performance.now() };
        reads.schedule(settleMs);
        log.debug({ settleMs }, 'the configuration is refused; reported if the file stays unchanged (a write in progress is read again)');
        return;
      }
      last = text;
      refusedSave = result.ok ? undefined : save;
      subscriber.next(result);
    };
    const reads = new FolderWatchDebounce(read, debounceMs, (error) => log.error({ err: error }, 'reading the configuration failed'));
    const schedule = () => reads.schedule();
    const stopWatch = watchFolder(
      dirname(resolve(path)),
      {
        event: (filename) => {
          if (concernsFile(filename, fileName)) schedule();
        },
        failed: (error, attempt) => {
          log.warn({ err: error, attempt }, 'watching the configuration folder failed; retrying');
          // Reported once per outage, not once per attempt.
          if (attempt === 0 && !reads.closed) subscriber.next({ ok: false, error: new ConfigFileError(path, `cannot watch the folder: ${errorMessage(error)}`, { cause: error }) });
        },
        rewatched: schedule,
      },
      rewatchBackoff,
    );
    void reads.run();
    return () => {
      void reads.close();
      stopWatch();
    };
  });
}

function parse(path: string, text: string): ConfigResult {
  try {
    return { ok: true, config: parseConfig(path, text), text };
  } catch (error) {
    return { ok: false, error: error instanceof ConfigFileError ? error : new ConfigFileError(path, errorMessage(error), { cause: error }) };
  }
}
