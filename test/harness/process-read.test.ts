import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, readFrom, readTail, removeTempDir } from './process.ts';

describe('readFrom and readTail', () => {
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dir = await makeTempDir('sb-read-');
    file = join(dir, 'log');
    await writeFile(file, 'first line\nsecond line\n');
  });
  afterAll(() => removeTempDir(dir));

  it.each([
    { offset: 0, maxBytes: undefined, text: 'first line\nsecond line\n' },
    { offset: 11, maxBytes: undefined, text: 'second line\n' },
    { offset: 11, maxBytes: 5, text: 'line\n' },
    { offset: 0, maxBytes: 0, text: '' },
    // Past the end (a file truncated since its size was taken): nothing.
    { offset: 100, maxBytes: undefined, text: '' },
  ])('readFrom reads what is past byte $offset, at most its last $maxBytes bytes', async ({ offset, maxBytes, text }) => {
    expect(await readFrom(file, offset, maxBytes)).toBe(text);
  });

  it('readTail reads the last bytes of a file, and says so instead of throwing when it cannot', async () => {
    expect(await readTail(file, 12)).toBe('second line\n');
    await expect(readFrom(join(dir, 'missing'), 0)).rejects.toThrow(/ENOENT/);
    expect(await readTail(join(dir, 'missing'))).toMatch(/^\(log .*missing unreadable: .*ENOENT/);
  });
});
