import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../../src/logger.ts';
import { keepWriting } from '../../test/harness/keep-writing.ts';
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

  it('reports a certificate rewritten more often than the debounce once its first change is the maximum wait old', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-cert-watch-'));
    const files = { certFile: join(dir, 'site.pem'), keyFile: join(dir, 'site-key.pem') };
    await Promise.all([writeFile(files.certFile, 'old'), writeFile(files.keyFile, 'old')]);
    let changes = 0;
    // Each write's event restarts the 5 s quiet time, past the deadline of the wait below.
    watch = new CertificateFolderWatch(async () => void (changes += 1), rootLogger, { test: 'rewritten' }, { debounceMs: 5_000, maxWaitMs: 200 });
    watch.watch([files]);
    const writer = keepWriting(files.certFile, (n) => `certificate ${n}`);
    try {
      await waitFor(() => changes > 0, { timeoutMs: 4_000, message: 'a call for the certificate that keeps changing' });
    } finally {
      await writer.stop();
    }
  });
});
