import { basename, dirname, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Observable } from 'rxjs';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import { concernsFile, folderWatchOutageLog, REWATCH_BACKOFF, watchFolder, type FolderWatchBackoff } from '../../src/folder-watch.ts';
import { CONFIG_DEBOUNCE_MS, FOLDER_WATCH_MAX_WAIT_MS, FolderWatchDebounce } from '../../src/folder-watch-debounce.ts';
import { FilesFolderWatch } from '../../src/folder-watch-files.ts';
import { currentSave, FOLDER_WATCH_SETTLE_MS, FolderWatchSettle, readingKey } from '../../src/folder-watch-settle.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import type { CertificateSettleOptions } from './certificate-check.ts';
import { parseConfig, parseRefusedConfigSettled, readConfigFile, type ConfigFileReading } from './load.ts';
import { filesFingerprint, filesOfRefusal, filesReadOnLoad } from './named-files.ts';
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
  /** Backoff between attempts to watch a folder (the file's, or one of a file a refused text names) again after its watcher failed (`REWATCH_BACKOFF` by default). */
  readonly rewatchBackoff?: FolderWatchBackoff;
  /** How long a refused text (the same save), or an unreadable file, must stay so before its refusal is reported (`FOLDER_WATCH_SETTLE_MS` by default). */
  readonly settleMs?: number;
  /** Longest a change waits to be read, and a refusal to be reported, while the file keeps changing (`FOLDER_WATCH_MAX_WAIT_MS` by default). */
  readonly maxWaitMs?: number;
  /** Where the watch writes its lines; a `config-watch` child of the root logger by default. */
  readonly log?: Logger;
  /**
   * Each value asks for the file to be read as a change event would have it read (a SIGHUP, as
   * nginx and HAProxy reload on one): for a change no event reported (an edit behind a symlink into
   * another folder, a network file system), or after a folder watch outage. The files the text
   * names are taken as changed too, however they changed: a text refused for one of them is parsed
   * again (emitted once taken), and the running text is parsed again if their contents differ.
   */
  readonly rereads$?: Observable<unknown>;
}

/** Default quiet time before a changed file is read. */
export { CONFIG_DEBOUNCE_MS };

type Refusal = Extract<ConfigResult, { ok: false }>;

/**
 * Watches the configuration file: emits the current result, then one each time the text changes.
 * The folder is watched, not the file: editors replace files by rename and Kubernetes swaps a symlinked folder,
 * both of which a file watch would lose. Events naming the file (see `concernsFile`) are debounced, then the file is
 * read; unchanged text is skipped, so only real edits reach the caller (a file that cannot be read
 * is reported once, when it has stayed so for `settleMs`, as a refused text), except after a refusal: saving the same text again (`touch`) retries it, for a refusal
 * by a file the configuration names that has appeared since; the other events of the save it was refused in do not.
 * A refusal is reported only once the refused text has settled (`FolderWatchSettle`: the same save read the same for `settleMs`): a further change in that
 * time (the rest of a write read half-way) supersedes it unreported, unless the file has kept changing for `maxWaitMs`
 * since the first refusal: then the latest is reported; events that keep coming read the file every `maxWaitMs` the same way. The caller applies `ok` results and keeps its running config on refused ones.
 * A text refused while a certificate pair it names does not check is parsed again once that pair has settled by the same rule (`parseConfigSettled`),
 * so a reload that lands in a renewal written one file at a time is taken once the pair is whole.
 * While the latest text is refused and would parse but for the files it names (certificate pairs, upstream CA bundles and client pairs,
 * JWT key files: `filesNamedBy`), their folders are watched too (`FilesFolderWatch`), from the refusal on: a change of one of those
 * files parses the refused text again (pairs settled by the same rule) and emits it once it is taken (logged at info), with no save of
 * the configuration file; a text still refused is not reported again. That watch stops when the text changes or is taken, and on unsubscribing.
 * While a text runs (taken), the files it reads only when it loads are watched the same way (`filesReadOnLoad`: upstream CA bundles and
 * client pairs, registry and config store credentials, JWT key files; not the certificate pairs, which the entry points reload on their own):
 * a change of their contents (`filesFingerprint`; an event that changed none is skipped) parses the same text again (pairs settled by the
 * same rule) and emits it once taken (logged at info), so that a renewed client certificate or CA bundle is applied with no save of the
 * configuration file; refused, the refusal is emitted (once per reason) and the running configuration stays, its files as they were read.
 * A parse during which those files changed is not emitted but done again (unless they keep changing for `maxWaitMs`): each result is emitted once.
 * Never errors: a failed folder watch is reported once and retried with backoff (`REWATCH_BACKOFF`: a folder not there yet
 * is tried again every 2 s at most), logged once per outage (`folderWatchOutageLog`). Unsubscribing
 * stops the watches, and the reading again of such a pair with them.
 */
export function watchConfig(path: string, options: WatchConfigOptions = {}): Observable<ConfigResult> {
  const debounceMs = options.debounceMs ?? CONFIG_DEBOUNCE_MS;
  const rewatchBackoff = options.rewatchBackoff ?? REWATCH_BACKOFF;
  const settleMs = options.settleMs ?? FOLDER_WATCH_SETTLE_MS;
  const maxWaitMs = options.maxWaitMs ?? FOLDER_WATCH_MAX_WAIT_MS;
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
    // A refusal not reported yet and the reading it came from (`readingKey`, or the error of an unreadable file), until that reading has settled.
    let held: { readonly key: string; readonly result: Refusal } | undefined;
    // When a refused reading is settled (`FolderWatchSettle`): the same save read the same for `settleMs`, or `maxWaitMs` since the first refusal's change.
    const settling = new FolderWatchSettle(settleMs, maxWaitMs);
    // Aborted on unsubscribing: a certificate pair being read again until it settles (`parseConfigSettled`) stops at once.
    const stopped = new AbortController();
    // When the change the read in progress looks at first came (see `FolderWatchDebounce`): a refusal it finds has been coming since then.
    let readingChangeSince: number | undefined;
    // Whether a file the refused text names (or the running text reads on load) has changed since that text was last parsed: it is then parsed again.
    let namedFilesChanged = false;
    // The files the running text reads only when it loads (`filesReadOnLoad`) and the digest of their contents when it was last parsed.
    let running: { readonly files: readonly string[]; readonly fingerprint: string } | undefined;
    // The reason the running text, parsed again for a change of its files, was last refused: reported once.
    let rereadRefused: string | undefined;
    // When the running text was first refused with its changed files, until they are taken or the refusal reported (see `maxWaitMs`).
    let rereadRefusedSince: number | undefined;
    // When (performance.now()) a parse first found the files it read changed under it, until one finds them unchanged (see `maxWaitMs`).
    let filesChangingSince: number | undefined;
    // Rereads asked for (`rereads$`), those the read in progress answers (asked before it began) and those answered:
    // a reread is answered by the result it brings, or by a line saying that it brought none (see `unchangedOnReread`).
    let rereadsAsked = 0;
    let readingRereads = 0;
    let rereadsAnswered = 0;
    /** Emits a result of the read in progress, which answers the rereads asked before it began. */
    const next = (result: ConfigResult) => {
      rereadsAnswered = readingRereads;
      subscriber.next(result);
    };
    /**
     * The read in progress ends with nothing to emit: a reread it answers gets a line saying so (`still` refused
     * or unreadable, with the reason; else unchanged), where a change event's read stays silent. A read that
     * holds its refusal until it settles leaves the reread to the read that reports it.
     */
    const unchangedOnReread = (still?: { readonly reason: string; readonly unreadable?: boolean }) => {
      if (readingRereads <= rereadsAnswered) return;
      rereadsAnswered = readingRereads;
      if (still === undefined) log.info('the configuration file and the files it names are unchanged: nothing to apply');
      else if (still.unreadable) log.warn({ reason: still.reason }, 'the configuration file still cannot be read; the running configuration stays');
      else log.warn({ reason: still.reason }, 'the configuration file is unchanged and still refused; the running configuration stays');
    };
    // The folders of the files the last refused text names, watched while it is refused (see `watchNamedFiles`).
    const namedFiles = new FilesFolderWatch(
      () => {
        namedFilesChanged = true;
        reads.schedule(0);
        return Promise.resolve();
      },
      log,
      {},
      { folder: 'folder of a file the configuration names', changeFailed: 'reading the configuration again for a file it names failed' },
      { debounceMs, maxWaitMs, rewatchBackoff },
    );
    /**
     * Watches the files `text` names when it would parse but for them (`filesNamedBy`), else none: the refusal may
     * then end with no save of the configuration file (a key put right, a CA bundle copied in). Undefined: those
     * the running text reads on load (`running`), renewed on disk while it runs.
     */
    const watchNamedFiles = (text: string | undefined) => {
      // None for a text refused for its own content: only a new save can change that.
      const paths = text === undefined ? (running?.files ?? []) : (filesOfRefusal(path, text) ?? []);
      if (paths.length === 0) namedFilesChanged = false;
      namedFiles.watchFiles(paths);
    };

    /** Holds a refusal until its reading has settled, or reports it and calls `reported`. */
    const settle = (key: string, result: Refusal, reported: () => void) => {
      const verdict = settling.observe(key, readingChangeSince);
      if (!verdict.settled) {
        // `last` stays what the caller has, so that the rest of a write is compared with that. An event of the
        // same write can bring the next read early; it holds the refusal for the rest of the time.
        if (held?.key !== key) log.debug({ settleMs, reason: result.error.message }, 'the configuration is refused; reported if the file stays so (a write in progress is read again)');
        held = { key, result };
        reads.schedule(verdict.readAgainInMs);
        return;
      }
      held = undefined;
      reported();
      if (!reads.closed) next(result);
    };
    /** The file is as the caller has it (or a baseline): nothing to report. */
    const settled = () => {
      held = undefined;
      settling.reset();
    };

    const read = async (changedSince: number | undefined) => {
      const emit = emitNext;
      const change = started;
      emitNext = true;
      started = true;
      readingChangeSince = changedSince;
      readingRereads = rereadsAsked;
      // Carried only into the parse this read makes: a read that ends before one (nothing to apply, the same
      // text, a held refusal) ends the files' changing, else a later change would find the wait long over.
      const changingSince = filesChangingSince;
      filesChangingSince = undefined;
      let reading: ConfigFileReading;
      try {
        reading = await readConfigFile(path);
      } catch (error) {
        // Reported once per outage, and only once it has lasted the settle time: a file removed mid-save
        // (an editor that deletes, then writes) is read again, whole, when the save's next event comes.
        if (last === null || !emit) {
          if (last === null) unchangedOnReread({ reason: (error as ConfigFileError).message, unreadable: true });
          settled();
          last = null;
          refusedSave = undefined;
          watchNamedFiles(undefined);
          return;
        }
        settle(`unreadable\n${(error as ConfigFileError).message}`, { ok: false, error: error as ConfigFileError }, () => {
          last = null;
          refusedSave = undefined;
          watchNamedFiles(undefined);
        });
        return;
      }
      const { text, save } = reading;
      // Unchanged since it was refused (the same save): reported once it has settled, then as any refusal;
      // unless a file it names has changed since: then it is parsed again.
      if (held !== undefined && held.key === readingKey(reading) && !namedFilesChanged) {
        settle(held.key, held.result, () => {
          last = text;
          refusedSave = save;
        });
        return;
      }
      // Else the file changed again before the refusal was reported: a write read half-way, not a save.
      held = undefined;
      // A refused text is read again when the file is saved again, even unchanged: it may be refused for
      // a file it names (a CA bundle, a key) that is there now, copied in after the edit. Only a new save
      // counts: one save raises several events (a write's truncation, then its text; the steps of a
      // Kubernetes swap), and a read after the first can already see the whole text, which the later
      // events would otherwise refuse again (a reload counted as refused twice).
      // A refused text (this same save) whose named files changed is parsed again, and reported only if taken:
      // its refusal was reported already.
      const retry = namedFilesChanged && text === last && refusedSave === save;
      // The running text whose files (`running`) changed on disk: parsed again, to apply them. Their contents are compared
      // too when no event of theirs came: a change made while a newer text was read (whose files were watched instead) is
      // applied when that edit is undone, not lost until their next change.
      const reread = text === last && refusedSave === undefined && running !== undefined && (namedFilesChanged || filesFingerprint(running.files) !== running.fingerprint);
      if (!retry && !reread && text === last && (refusedSave === undefined || refusedSave === save)) {
        // Back to the running text before a refusal was reported (an edit undone): that refusal waits for no file.
        if (refusedSave === undefined) watchNamedFiles(undefined);
        unchangedOnReread();
        return settled();
      }
      // An empty file after a first reading is a write caught between its truncation and its text
      // (`>`, most tools that do not rename): the write's own event reads it again. Applied, it would
      // drop every route for the defaults; one emptied on purpose is refused the same way, loudly.
      if (change && text.trim() === '') {
        log.warn('the configuration file is empty: the running configuration stays (a write in progress is read again when it ends)');
        // That line answers a reread too.
        rereadsAnswered = readingRereads;
        // A writer that never stops can be caught so at each maximum wait: the wait keeps counting from the change.
        reads.notReadYet(readingChangeSince);
        return;
      }
      if (!emit || reads.closed) {
        settled();
        last = text;
        refusedSave = undefined;
        const files = filesReadOnLoad(path, text);
        running = { files, fingerprint: filesFingerprint(files) };
        watchNamedFiles(undefined);
        return;
      }
      // This parse reads the named files as they are now; a change from here on is seen by their watch.
      namedFilesChanged = false;
      // The contents of the files it reads on load before it reads them: a change during the parse shows as a difference afterwards.
      const files = filesReadOnLoad(path, text);
      const fingerprint = filesFingerprint(files);
      if (reread && fingerprint === running!.fingerprint) {
        // Events that changed no content (a touch, a file written again the same): nothing to apply.
        rereadRefused = undefined;
        unchangedOnReread();
        return settled();
      }
      const { result, waited } = await parse(path, text, { settleMs, maxWaitMs, log, signal: stopped.signal });
      // Unsubscribed while a certificate pair the text names settled.
      if (reads.closed) return;
      // Changed during the parse (a CA bundle renewed while a certificate pair settled, a file caught between its
      // truncation and its text): the result may hold either contents, so neither digest stands for it. Emitted, the
      // change's own read would parse the same contents and emit them again, the same configuration twice: read again
      // instead, unless the files have kept changing for `maxWaitMs`.
      if (filesFingerprint(files) !== fingerprint) {
        namedFilesChanged = true;
        reads.schedule(0);
        filesChangingSince = changingSince ?? performance.now();
        if (performance.now() - filesChangingSince < maxWaitMs) return;
        filesChangingSince = undefined;
      }
      if (result.ok) running = { files, fingerprint };
      // Watched from the refusal on, before it is reported: a file put right while the refusal settles is seen too.
      // The running text refused with its files as they are now keeps them watched: their next change is read again.
      watchNamedFiles(result.ok || reread ? undefined : text);
      // Changed after the parse, before the watch started: read again (the parse read the older contents).
      if (result.ok && filesFingerprint(files) !== fingerprint) {
        namedFilesChanged = true;
        reads.schedule(0);
      }
      // Saved again while a certificate pair the text names settled: the save's event has queued the next read, which
      // judges the newer text; applied now, the older one would take effect (listeners rebound…) just before it.
      if (waited && (await currentSave(path)) !== save) {
        log.debug('the configuration was saved again while a certificate pair it names settled; the newer text is read instead');
        reads.notReadYet(readingChangeSince);
        return;
      }
      if (reads.closed) return;
      if (!result.ok) {
        // Still refused after a change of its files: reported already, and its files are still watched.
        if (retry) return unchangedOnReread({ reason: result.error.message });
        if (reread) {
          // A client pair renewed one file at a time can be read half-way (a new certificate, the old key): reported only
          // once the files have stayed as read for `settleMs`, or kept changing for `maxWaitMs`; a change meanwhile is read again.
          rereadRefusedSince ??= Date.now();
          await delay(settleMs, undefined, { signal: stopped.signal }).catch(() => undefined);
          if (reads.closed) return;
          if (filesFingerprint(files) !== fingerprint && Date.now() - rereadRefusedSince < maxWaitMs) {
            namedFilesChanged = true;
            reads.schedule(0);
            return;
          }
          rereadRefusedSince = undefined;
          // The running configuration stays, with its files as they were read; reported once per reason.
          if (rereadRefused === result.error.message) return unchangedOnReread({ reason: result.error.message });
          rereadRefused = result.error.message;
          log.warn({ files, reason: result.error.message }, 'a file the running configuration names has changed and the configuration is refused with it; the running configuration stays (with the files as they were read)');
          next(result);
          return;
        }
        settle(readingKey(reading), result, () => {
          last = text;
          refusedSave = save;
        });
        return;
      }
      if (retry) log.info('the refused configuration is taken: a file it names has changed since its refusal');
      if (reread) log.info({ files }, 'a file the configuration names has changed: the configuration is read again with it and applied (its text is unchanged)');
      rereadRefused = undefined;
      rereadRefusedSince = undefined;
      settled();
      last = text;
      refusedSave = undefined;
      next(result);
    };
    // A file that keeps changing is read anyway once its first change not read yet is `maxWaitMs` old:
    // each event restarts the quiet time, which alone would wait for the writer to stop.
    const reads = new FolderWatchDebounce(read, debounceMs, (error) => log.error({ err: error }, 'reading the configuration failed'), maxWaitMs);
    const schedule = () => reads.schedule();
    const folder = dirname(resolve(path));
    const outage = folderWatchOutageLog(log, 'configuration folder', { folder });
    const stopWatch = watchFolder(
      folder,
      {
        event: (filename) => {
          if (concernsFile(filename, fileName)) schedule();
        },
        failed: (error, attempt) => {
          outage.failed(error, attempt);
          // Reported once per outage, not once per attempt.
          if (attempt === 0 && !reads.closed) subscriber.next({ ok: false, error: new ConfigFileError(path, `cannot watch the folder: ${errorMessage(error)}`, { cause: error }) });
        },
        rewatched: () => {
          outage.rewatched();
          schedule();
        },
      },
      rewatchBackoff,
    );
    // A reread stands for events of the files the text names as well as of the file (see `rereads$`).
    const rereads = options.rereads$?.subscribe(() => {
      rereadsAsked += 1;
      namedFilesChanged = true;
      schedule();
    });
    void reads.run();
    return () => {
      rereads?.unsubscribe();
      stopped.abort();
      void reads.close();
      stopWatch();
      namedFiles.close();
    };
  });
}

/** The result of `text` (`parseConfigSettled`), and whether it was refused at first and so may have waited for a certificate pair to settle: the only way the text can have gone stale meanwhile. */
async function parse(path: string, text: string, settle: CertificateSettleOptions): Promise<{ readonly result: ConfigResult; readonly waited: boolean }> {
  try {
    return { result: { ok: true, config: parseConfig(path, text), text }, waited: false };
  } catch (refusal) {
    try {
      return { result: { ok: true, config: await parseRefusedConfigSettled(path, text, refusal, settle), text }, waited: true };
    } catch (error) {
      return { result: { ok: false, error: error instanceof ConfigFileError ? error : new ConfigFileError(path, errorMessage(error), { cause: error }) }, waited: true };
    }
  }
}
