import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { screenshotPath } from './chromium.ts';
import { REPO_ROOT } from './programs.ts';

describe('screenshotPath', () => {
  it('puts a screenshot in a fresh temporary directory of its own, outside the repository, unless asked for docs/', async () => {
    const [first, second] = await Promise.all([screenshotPath('dashboard.png', {}), screenshotPath('dashboard.png', { UPDATE_SCREENSHOTS: '0' })]);
    for (const path of [first, second]) {
      expect(basename(path)).toBe('dashboard.png');
      expect(dirname(dirname(path))).toBe(tmpdir());
      expect(path.startsWith(REPO_ROOT)).toBe(false);
    }
    expect(dirname(first)).not.toBe(dirname(second));
  });

  it('puts it in docs/, where README shows it, with UPDATE_SCREENSHOTS=1', async () => {
    expect(await screenshotPath('dashboard.png', { UPDATE_SCREENSHOTS: '1' })).toBe(join(REPO_ROOT, 'docs', 'dashboard.png'));
  });
});
