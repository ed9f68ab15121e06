import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * Writes `text` to `path` atomically: a temporary file in the same folder (private to this user),
 * then a rename, so that a crash mid-write leaves the previous file whole. The folder is made when
 * missing. Used by the last-known-good snapshots of the config store and of the registries. The
 * temporary name is random, not the pid: two containers sharing a volume both run as pid 1.
 */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * The writes of one snapshot file, one after another, with their failures said once: a warning when
 * writes start failing (a read-only folder fails every write, once a second), an info line when one
 * succeeds again, nothing for the failures in between.
 */
export class SnapshotWrites {
  private chain: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(
    private readonly log: Logger,
    /** What the file is, as the log lines name it ("registry snapshot"). */
    private readonly what: string,
  ) {}

  /** Queues `write` of `path` after the writes queued before. */
  enqueue(path: string, write: () => Promise<void>): void {
    this.chain = this.chain.then(write).then(
      () => {
        if (!this.failing) return;
        this.failing = false;
        this.log.info({ path }, `${this.what} written again`);
      },
      (error: unknown) => {
        if (this.failing) return;
        this.failing = true;
        this.log.warn({ path, err: errorMessage(error) }, `cannot write the ${this.what} (said once until a write succeeds)`);
      },
    );
  }

  /** Settles once every queued write has. */
  settled(): Promise<void> {
    return this.chain;
  }
}
