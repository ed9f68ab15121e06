import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../../src/logger.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { CertificateFolderWatch } from './tls-folder-watch.ts';

describe('CertificateFolderWatch', () => {
  let dir: string | undefined;
  let watch: CertificateFolderWatch | undefined;
  let busy: NodeJS.Timeout | undefined;
  afterEach(async () => {
    clearInterval(busy);
    watch?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports a renewed certificate while another file in its folder is written more often than the debounce', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-cert-watch-'));
    const files = { certFile: join(dir, 'site.pem'), keyFile: join(dir, 'site-key.pem') };
    await Promise.all([writeFile(files.certFile, 'old'), writeFile(files.keyFile, 'old')]);
    let changes = 0;
    watch = new CertificateFolderWatch(async () => void (changes += 1), rootLogger, { test: 'busy-folder' });
    watch.watch([files]);
    // A log beside the certificates, written every 20 ms for as long as the test runs: its events
    // restarted the 200 ms debounce every time, and the renewal was never read.
    const log = join(dir, 'app.log');
    busy = setInterval(() => void appendFile(log, 'line\n'), 20);
    await writeFile(`${files.certFile}.tmp`, 'new');
    await rename(`${files.certFile}.tmp`, files.certFile);
    await waitFor(() => changes > 0, { timeoutMs: 5_000, message: 'the renewal reported while the log is written' });
    expect(changes).toBe(1);
  });
});
