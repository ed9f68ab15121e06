import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeTempDir } from '../test/harness/temp-dirs.ts';
import { SnapshotWrites, writeFileAtomically } from './atomic-file.ts';
import { rootLogger } from './logger.ts';

describe('writeFileAtomically', () => {
  it('writes concurrent writes of one path from one process each whole, leaving no temporary file', async () => {
    const folder = await makeTempDir('sb-atomic-file-');
    const path = join(folder, 'snapshot.json');
    const texts = Array.from({ length: 20 }, (_, index) => `${String(index).repeat(10_000)}\n`);
    const results = await Promise.allSettled(texts.map((text) => writeFileAtomically(path, text)));
    expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
    expect(texts).toContain(await readFile(path, 'utf8'));
    expect(await readdir(folder)).toEqual(['snapshot.json']);
  });
});

describe('SnapshotWrites', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('warns when writes start failing, once until one succeeds, and says so when it does', async () => {
    const folder = await makeTempDir('sb-snapshot-writes-');
    const blocker = join(folder, 'not-a-folder');
    await writeFile(blocker, '');
    const path = join(blocker, 'snapshot.json');
    const log = rootLogger.child({});
    const warn = vi.spyOn(log, 'warn');
    const info = vi.spyOn(log, 'info');
    const writes = new SnapshotWrites(log, 'registry snapshot');
    for (let index = 0; index < 5; index += 1) writes.enqueue(path, () => writeFileAtomically(path, 'x'));
    await writes.settled();
    expect(warn.mock.calls).toEqual([[{ path, err: expect.any(String) as string }, 'cannot write the registry snapshot (said once until a write succeeds)']]);

    const writable = join(folder, 'snapshot.json');
    writes.enqueue(writable, () => writeFileAtomically(writable, 'y'));
    writes.enqueue(writable, () => writeFileAtomically(writable, 'z'));
    await writes.settled();
    expect(info.mock.calls).toEqual([[{ path: writable }, 'registry snapshot written again']]);
    expect(await readFile(writable, 'utf8')).toBe('z');

    writes.enqueue(path, () => writeFileAtomically(path, 'x'));
    await writes.settled();
    expect(warn).toHaveBeenCalledTimes(2);
  });
});
