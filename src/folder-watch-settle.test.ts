import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FOLDER_WATCH_MAX_WAIT_MS } from './folder-watch-debounce.ts';
import { FOLDER_WATCH_SETTLE_MS, FolderWatchSettle, readFileWithSave, readingKey } from './folder-watch-settle.ts';

// The clock is the `now` each observation is given, so the file system is real and no test waits.
describe('FolderWatchSettle', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-settle-'));
    path = join(dir, 'list.yaml');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const observe = async (settle: FolderWatchSettle, now: number) => {
    const reading = await readFileWithSave(path);
    return { reading, verdict: settle.observe(readingKey(reading), undefined, now) };
  };

  it('reads the same save twice alike, and a file renamed over it as a new save with the same text', async () => {
    await writeFile(path, 'a: 1\n');
    const first = await readFileWithSave(path);
    expect(await readFileWithSave(path)).toEqual(first);
    await writeFile(`${path}.tmp`, 'a: 1\n');
    await rename(`${path}.tmp`, path);
    const renamed = await readFileWithSave(path);
    expect(renamed.text).toBe(first.text);
    expect(renamed.save).not.toBe(first.save);
  });

  it('rejects with the file system error for a file that is not there', async () => {
    await expect(readFileWithSave(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('judges a file written in two steps only once its whole text has read the same for the settle time', async () => {
    const settle = new FolderWatchSettle();
    await writeFile(path, 'services:\n  api: [');
    expect((await observe(settle, 0)).verdict).toEqual({ settled: false, readAgainInMs: FOLDER_WATCH_SETTLE_MS });
    await appendFile(path, '"10.0.0.1:80"]\n');
    // The settle time of the first part has passed, but the file changed: the rest waits a settle time of its own.
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS)).verdict).toEqual({ settled: false, readAgainInMs: FOLDER_WATCH_SETTLE_MS });
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS + 100)).verdict).toEqual({ settled: false, readAgainInMs: 50 });
    const { reading, verdict } = await observe(settle, 2 * FOLDER_WATCH_SETTLE_MS);
    expect(verdict).toEqual({ settled: true, forced: false });
    expect(reading.text).toBe('services:\n  api: ["10.0.0.1:80"]\n');
    expect(settle.pending).toBe(false);
  });

  it('does not take the same text from a new save for a settled one', async () => {
    const settle = new FolderWatchSettle();
    await writeFile(path, 'a: 1\n');
    await observe(settle, 0);
    await writeFile(`${path}.tmp`, 'a: 1\n');
    await rename(`${path}.tmp`, path);
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS)).verdict.settled).toBe(false);
    expect((await observe(settle, 2 * FOLDER_WATCH_SETTLE_MS)).verdict.settled).toBe(true);
  });

  it('judges the latest reading of a file that never stays put once the change is the maximum wait old', async () => {
    const settle = new FolderWatchSettle();
    let now = 0;
    for (; now < FOLDER_WATCH_MAX_WAIT_MS; now += 100) {
      await appendFile(path, `${now}\n`);
      expect((await observe(settle, now)).verdict.settled).toBe(false);
    }
    await appendFile(path, 'last\n');
    const { reading, verdict } = await observe(settle, now);
    expect(verdict).toEqual({ settled: true, forced: true });
    expect(reading.text.endsWith('last\n')).toBe(true);
  });

  it('counts the maximum wait from the change the first reading answers, and asks for no read past it', async () => {
    const settle = new FolderWatchSettle(150, 1_000);
    await writeFile(path, 'a');
    const key = readingKey(await readFileWithSave(path));
    expect(settle.observe(key, 0, 900)).toEqual({ settled: false, readAgainInMs: 100 });
    expect(settle.observe(`${key}!`, undefined, 1_000)).toEqual({ settled: true, forced: true });
  });

  it('judges a settled reading again at once, and starts over for another one or after a reset', async () => {
    const settle = new FolderWatchSettle();
    await writeFile(path, 'a');
    await observe(settle, 0);
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS)).verdict.settled).toBe(true);
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS + 1)).verdict).toEqual({ settled: true, forced: false });
    settle.reset();
    expect((await observe(settle, FOLDER_WATCH_SETTLE_MS + 2)).verdict.settled).toBe(false);
    await appendFile(path, 'b');
    expect((await observe(settle, 10 * FOLDER_WATCH_SETTLE_MS)).verdict.settled).toBe(false);
  });

  it('waits for a reading that must settle past the maximum wait, saying it is overdue, and settles it once it stays the same', async () => {
    const settle = new FolderWatchSettle(150, 1_000);
    await writeFile(path, 'a');
    const first = readingKey(await readFileWithSave(path));
    expect(settle.awaitSettled(first, 0, 0)).toEqual({ settled: false, readAgainInMs: 150, overdue: false });
    await appendFile(path, 'b');
    const second = readingKey(await readFileWithSave(path));
    expect(settle.awaitSettled(second, undefined, 1_000)).toEqual({ settled: false, readAgainInMs: 150, overdue: true });
    expect(settle.awaitSettled(second, undefined, 1_100)).toEqual({ settled: false, readAgainInMs: 50, overdue: true });
    expect(settle.awaitSettled(second, undefined, 1_150)).toEqual({ settled: true });
    expect(settle.pending).toBe(false);
  });
});
