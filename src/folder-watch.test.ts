import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../test/harness/wait.ts';
import { folderWatchOutageLog, watchFolder, type FolderWatchBackoff } from './folder-watch.ts';

describe('watchFolder', () => {
  let root: string;
  let stop: (() => void) | undefined;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sb-folder-watch-'));
  });
  afterEach(async () => {
    stop?.();
    await rm(root, { recursive: true, force: true });
  });

  /** Watches `folder`, recording what it reports. */
  const record = (folder: string, backoff: FolderWatchBackoff = { initialMs: 10, maxMs: 40 }) => {
    const seen = { events: [] as (string | null)[], failures: [] as number[], rewatched: 0 };
    stop = watchFolder(
      folder,
      {
        event: (filename) => void seen.events.push(filename),
        failed: (_error, attempt) => void seen.failures.push(attempt),
        rewatched: () => void (seen.rewatched += 1),
      },
      backoff,
    );
    return seen;
  };

  it('follows a folder that is missing, created, removed and created again, failing once per outage', async () => {
    const folder = join(root, 'certs');
    const seen = record(folder);
    // Missing: retried, the attempts counting up.
    await waitFor(() => seen.failures.length >= 3, { timeoutMs: 5_000, message: 'retries while the folder is missing' });
    await mkdir(folder);
    await waitFor(() => seen.rewatched === 1, { timeoutMs: 5_000, message: 'the folder watched once it appears' });
    await writeFile(join(folder, 'a.pem'), 'a');
    await waitFor(() => seen.events.includes('a.pem'), { timeoutMs: 5_000, message: 'an event of the created folder' });
    const firstOutage = seen.failures.length;
    // Removed while watched: Linux says so with an event naming the folder, not an error; the watch
    // would stay on the removed inode and never see the folder created again.
    await rm(folder, { recursive: true });
    await waitFor(() => seen.failures.length >= firstOutage + 3, { timeoutMs: 5_000, message: 'retries once the folder is removed' });
    await mkdir(folder);
    await waitFor(() => seen.rewatched === 2, { timeoutMs: 5_000, message: 'the folder watched again once created again' });
    await writeFile(join(folder, 'b.pem'), 'b');
    await waitFor(() => seen.events.includes('b.pem'), { timeoutMs: 5_000, message: 'an event of the folder created again' });
    // Each outage starts at attempt 0 and counts up by one per retry.
    const outages = seen.failures.map((attempt, i) => (attempt === 0 ? i : -1)).filter((i) => i >= 0);
    expect(outages).toEqual([0, firstOutage]);
    expect(seen.failures.slice(0, firstOutage)).toEqual([...Array(firstOutage).keys()]);
  });

  it('watches the folder put in place of the watched one (moved away, another renamed in)', async () => {
    const folder = join(root, 'certs');
    await mkdir(folder);
    const seen = record(folder);
    await mkdir(join(root, 'next'));
    await rename(folder, join(root, 'old'));
    await rename(join(root, 'next'), folder);
    await waitFor(() => seen.rewatched === 1, { timeoutMs: 5_000, message: 'the new folder watched' });
    await writeFile(join(folder, 'a.pem'), 'a');
    await waitFor(() => seen.events.includes('a.pem'), { timeoutMs: 5_000, message: 'an event of the new folder' });
  });

  it('does not take a file named as its folder for the folder', async () => {
    const folder = join(root, 'certs');
    await mkdir(folder);
    const seen = record(folder);
    await writeFile(join(folder, 'certs.tmp'), 'x');
    await rename(join(folder, 'certs.tmp'), join(folder, 'certs'));
    await waitFor(() => seen.events.includes('certs'), { timeoutMs: 5_000, message: 'the rename\'s event' });
    await writeFile(join(folder, 'after'), 'x');
    await waitFor(() => seen.events.includes('after'), { timeoutMs: 5_000, message: 'a later event' });
    expect(seen.failures).toEqual([]);
  });

  it('tries a missing folder again at most missingMaxMs apart, however long it has been missing', async () => {
    const folder = join(root, 'later');
    // Uncapped, the 10th retry would come 10 s after the 9th (10 ms doubling, no jitter); capped, 100 ms.
    const seen = record(folder, { initialMs: 10, maxMs: 60_000, missingMaxMs: 100, jitter: 0 });
    await waitFor(() => seen.failures.length >= 10, { timeoutMs: 10_000, message: 'ten failed attempts' });
    await mkdir(folder);
    await waitFor(() => seen.rewatched === 1, { timeoutMs: 3_000, message: 'the folder watched within the missing folder\'s cap' });
  });
});

describe('folderWatchOutageLog', () => {
  it('logs the loss of a watch once at its level, the retries at debug, and the recovery at info', () => {
    const lines: { level: number; msg: string; folder?: string; attempt?: number }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const outage = folderWatchOutageLog(log, 'certificate folder', { folder: '/certs' });
    for (const attempt of [0, 1, 2]) outage.failed(new Error('ENOENT'), attempt);
    outage.rewatched();
    expect(lines.map(({ level, msg, folder, attempt }) => ({ level, msg, folder, attempt }))).toEqual([
      { level: 40, msg: 'watching the certificate folder failed; retrying (further failures at debug)', folder: '/certs', attempt: 0 },
      { level: 20, msg: 'watching the certificate folder failed again; retrying', folder: '/certs', attempt: 1 },
      { level: 20, msg: 'watching the certificate folder failed again; retrying', folder: '/certs', attempt: 2 },
      { level: 30, msg: 'watching the certificate folder again', folder: '/certs', attempt: undefined },
    ]);
  });
});
