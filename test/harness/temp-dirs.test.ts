import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { beginFileTempFolder, endFileTempFolder, makeTempDir, makeTempDirSync } from './temp-dirs.ts';

// Each test begins a folder of its own, as the setup file does for every test file: the folder the
// setup began for this file is then taken for one whose file never ended it, and removed.
describe("a test file's temporary folder", () => {
  it('is a fresh os.tmpdir() that the end removes with all in it, naming what the suite left there without makeTempDir', async () => {
    const fileFolder = tmpdir();
    beginFileTempFolder();
    const folder = tmpdir();
    expect(folder).not.toBe(fileFolder);
    expect(existsSync(fileFolder)).toBe(false);
    const made = await makeTempDir('sb-made-');
    const bare = mkdtempSync(join(tmpdir(), 'sb-bare-'));
    mkdirSync(join(folder, '.org.chromium.Chromium.abc123'));
    expect(dirname(made)).toBe(folder);
    const error = await endFileTempFolder('test/some-file.test.ts');
    expect(error?.message).toMatch(new RegExp(`^test/some-file\\.test\\.ts left 1 temporary directory behind \\(removed now\\);[^]*:\\n  ${bare.slice(folder.length + 1)}$`));
    expect(existsSync(folder)).toBe(false);
    expect(tmpdir()).toBe(dirname(fileFolder));
  });

  it('is handed down to the programs the file starts, and ends quietly when only makeTempDir and other programs left something', async () => {
    beginFileTempFolder();
    const folder = tmpdir();
    const childTmpdir = execFileSync(process.execPath, ['-e', 'process.stdout.write(require("node:os").tmpdir())'], { encoding: 'utf8', timeout: 10_000 });
    expect(childTmpdir).toBe(folder);
    makeTempDirSync('sb-made-');
    mkdirSync(join(folder, 'hsperfdata_tests'));
    expect(await endFileTempFolder('test/some-file.test.ts')).toBeUndefined();
    expect(existsSync(folder)).toBe(false);
  });
});
