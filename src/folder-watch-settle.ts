import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { FOLDER_WATCH_MAX_WAIT_MS } from './folder-watch-debounce.ts';

/**
 * How long a file must read the same, from the same save, before a watch judges it: a file written
 * in several `write()` calls (`cp`, `cat big > file`, an editor that does not rename) can be read
 * between two of them, and its first part is not what was meant. Traefik's file provider and
 * Kubernetes-style watchers wait for such bursts the same way; `cp` and editors take milliseconds.
 */
export const FOLDER_WATCH_SETTLE_MS = 150;

/** A file's text and the save it came from. */
export interface FileReading {
  readonly text: string;
  /** The file's inode and modification time (ns) after the text was read: a new save (a write, a rename onto it, `touch`) changes it; reading does not. */
  readonly save: string;
}

/** Reads `path` with the stamp of the save its text came from; rejects with the file system's error. */
export async function readFileWithSave(path: string): Promise<FileReading> {
  const handle = await open(path, 'r');
  try {
    const text = await handle.readFile('utf8');
    // Taken after the read, from the same open file: a save that the text includes is in it, however the path was swapped since.
    return { text, save: saveOf(await handle.stat({ bigint: true })) };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The save `path` holds now, as `readFileWithSave` stamps it, or undefined when the file cannot be read: what tells whether a reading is still the file's. */
export async function currentSave(path: string): Promise<string | undefined> {
  try {
    return saveOf(await stat(path, { bigint: true }));
  } catch {
    return undefined;
  }
}

/** A save's stamp: the file's inode and modification time (ns). */
function saveOf(stats: BigIntStats): string {
  return `${stats.ino}:${stats.mtimeNs}`;
}

/** What identifies a reading for `FolderWatchSettle.observe`: its text and its save. */
export function readingKey(reading: FileReading): string {
  return `${reading.save}\n${reading.text}`;
}

/** The answer of `FolderWatchSettle.observe`: judge the reading now, or read again in `readAgainInMs`. */
export type SettleVerdict = { readonly settled: true; readonly forced: boolean } | { readonly settled: false; readonly readAgainInMs: number };

/**
 * Says when a watched file has settled: a reading (a key naming its text and save, see `readingKey`;
 * or an error's message) is settled once the same key has been observed `settleMs` after it was first
 * observed, so a write in progress, which changes the save or the text, is never judged half-way. A
 * file that never stays put is judged all the same `maxWaitMs` after its first unsettled change
 * (as the debounce's maximum wait): its latest reading then counts (`forced`). Users: the
 * configuration watch, the file provider, the certificate folder watch.
 */
export class FolderWatchSettle {
  /** The last key observed and since when (performance.now()) it has been seen; -Infinity once settled. */
  private seen: { readonly key: string; readonly since: number } | undefined;
  /** When the change being settled began: the maximum wait counts from it. */
  private pendingSince: number | undefined;

  constructor(
    readonly settleMs = FOLDER_WATCH_SETTLE_MS,
    readonly maxWaitMs = FOLDER_WATCH_MAX_WAIT_MS,
  ) {}

  /**
   * Observes one reading: settled when `key` has been seen since at least `settleMs` ago (or was
   * settled before), or when the change has waited `maxWaitMs` since `changedSince` (when the first
   * event it answers came; now by default). Else the caller reads again in `readAgainInMs`.
   */
  observe(key: string, changedSince?: number, now = performance.now()): SettleVerdict {
    const since = this.seen?.key === key ? this.seen.since : now;
    const settleLeftMs = this.settleMs - (now - since);
    if (settleLeftMs <= 0) return this.settle(key, false);
    this.pendingSince ??= Math.min(changedSince ?? now, now);
    const maxLeftMs = this.maxWaitMs - (now - this.pendingSince);
    if (maxLeftMs <= 0) return this.settle(key, true);
    this.seen = { key, since };
    return { settled: false, readAgainInMs: Math.min(settleLeftMs, maxLeftMs) };
  }

  /**
   * As `observe`, for a reading that must never be judged unsettled (a list that takes instances
   * away): only the same reading for `settleMs` settles it, however long the file keeps changing;
   * `overdue` says that the maximum wait has passed meanwhile.
   */
  awaitSettled(key: string, changedSince?: number, now = performance.now()): { readonly settled: true } | { readonly settled: false; readonly readAgainInMs: number; readonly overdue: boolean } {
    const since = this.seen?.key === key ? this.seen.since : now;
    const settleLeftMs = this.settleMs - (now - since);
    if (settleLeftMs <= 0) {
      this.settle(key, false);
      return { settled: true };
    }
    this.pendingSince ??= Math.min(changedSince ?? now, now);
    this.seen = { key, since };
    return { settled: false, readAgainInMs: settleLeftMs, overdue: now - this.pendingSince >= this.maxWaitMs };
  }

  /** True while a reading waits to settle. */
  get pending(): boolean {
    return this.pendingSince !== undefined;
  }

  /** Forgets what was observed: the caller has nothing left to settle (the file is as it has it). */
  reset(): void {
    this.seen = undefined;
    this.pendingSince = undefined;
  }

  private settle(key: string, forced: boolean): SettleVerdict {
    this.seen = { key, since: -Infinity };
    this.pendingSince = undefined;
    return { settled: true, forced };
  }
}
